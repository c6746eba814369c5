"""Getting started (1.3): operators written by subclassing."""

import asyncio
from collections.abc import AsyncIterator

from smmf_flow import DAG, MapOperator, StreamifyAbsOperator, TransformStreamAbsOperator


class HelloWorldOperator(MapOperator[str, None]):
    async def map(self, x: str) -> None:
        print(f"Hello, {x}!")


with DAG("awel_hello_world") as dag:
    task = HelloWorldOperator()

asyncio.run(task.call(call_data="world"))


class NumberProducerOperator(StreamifyAbsOperator[int, int]):
    async def streamify(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


class NumberDoubleOperator(TransformStreamAbsOperator[int, int]):
    async def transform_stream(self, it: AsyncIterator) -> AsyncIterator[int]:
        async for i in it:
            # Double the number
            yield i * 2


with DAG("numbers_dag") as dag:
    task = NumberProducerOperator()
    double_task = NumberDoubleOperator()
    task >> double_task


async def helper_call_fn(t, n: int):
    # Call the streaming operator by `call_stream` method
    async for i in await t.call_stream(call_data=n):
        print(i)


asyncio.run(helper_call_fn(double_task, 10))
