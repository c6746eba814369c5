"""Basic syntax (2.1): MapOperator, by function and by subclass."""

import asyncio

from smmf_flow import DAG, MapOperator


class MyMapOperator(MapOperator[str, None]):
    async def map(self, x: str) -> None:
        print(f"Hello, {x}!")


with DAG("awel_hello_world") as dag:
    task = MyMapOperator()
asyncio.run(task.call(call_data="subclass"))


class DoubleNumberOperator(MapOperator[int, int]):
    async def map(self, x: int) -> int:
        print(f"Received {x}, returning {x * 2}")
        return x * 2


with DAG("awel_double_number") as dag:
    task = DoubleNumberOperator()
assert asyncio.run(task.call(2)) == 4

with DAG("awel_map_chain") as dag:
    double = DoubleNumberOperator(task_name="double")
    plus_one = MapOperator(map_function=lambda x: x + 1, task_name="plus_one")
    to_text = MapOperator(map_function=lambda x: f"result={x}", task_id="to_text_id")
    double >> plus_one >> to_text
print(asyncio.run(to_text.call(call_data=20)))
print(asyncio.run(plus_one.call(call_data=20)))
print(to_text._blocking_call(call_data=1))


async def add_async(x: int) -> int:
    await asyncio.sleep(0)
    return x + 100


with DAG("awel_async_map") as dag:
    task = MapOperator(add_async)
print(asyncio.run(task.call(call_data=1)))
