"""Basic syntax (2.2): ReduceStreamOperator, by function and by subclass."""

import asyncio
from collections.abc import AsyncIterator

from smmf_flow import DAG, ReduceStreamOperator, StreamifyAbsOperator


class NumberProducerOperator(StreamifyAbsOperator[int, int]):
    """Create a stream of numbers from 0 to `n-1`"""

    async def streamify(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


class MySumOperator(ReduceStreamOperator[int, int]):
    async def reduce(self, x: int, y: int) -> int:
        return x + y


with DAG("sum_numbers_dag") as dag:
    task = NumberProducerOperator()
    sum_task = MySumOperator()
    task >> sum_task

o1 = asyncio.run(sum_task.call(call_data=5))
if o1 == sum(range(5)):
    print(f"Success! n is 5, sum is {o1}")
else:
    print("Failed")
o2 = asyncio.run(sum_task.call(call_data=10))
if o2 == sum(range(10)):
    print(f"Success! n is 10, sum is {o2}")
else:
    print("Failed")

with DAG("awel_reduce_operator") as dag:
    task = NumberProducerOperator()
    digits = ReduceStreamOperator(reduce_function=lambda x, y: x * 10 + y)
    task >> digits
print(asyncio.run(digits.call(call_data=1)))
print(asyncio.run(digits.call(call_data=6)))
