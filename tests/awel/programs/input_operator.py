"""Basic syntax (2.8): InputOperator and its input sources."""

import asyncio

from smmf_flow import (
    DAG,
    BaseInputSource,
    InputOperator,
    InputSource,
    MapOperator,
    SimpleCallDataInputSource,
    SimpleInputSource,
    TaskContext,
)

with DAG("awel_input_operator") as dag:
    input_source = SimpleInputSource(data="Hello, World!")
    input_task = InputOperator(input_source=input_source)
    print_task = MapOperator(map_function=lambda x: print(x))
    input_task >> print_task

asyncio.run(print_task.call())


async def stream_data():
    for i in range(10):
        yield i


with DAG("awel_input_operator") as dag:
    input_source = SimpleInputSource(data=stream_data())
    input_task = InputOperator(input_source=input_source)


async def print_stream(t: InputOperator):
    async for i in await t.call_stream():
        print(i)


asyncio.run(print_stream(input_task))

with DAG("awel_input_operator") as dag:
    input_source = SimpleCallDataInputSource()
    input_task = InputOperator(input_source=input_source)
    print_task = MapOperator(map_function=lambda x: print(x))
    input_task >> print_task

asyncio.run(print_task.call(call_data="Hello, World!"))
asyncio.run(print_task.call(call_data="AWEL is cool!"))


class MyInputSource(BaseInputSource):
    """Create an input source with a single data"""

    def _read_data(self, ctx: TaskContext) -> str:
        return "Hello, World!"


with DAG("awel_input_operator") as dag:
    input_source = MyInputSource()
    input_task = InputOperator(input_source=input_source)
    print_task = MapOperator(map_function=lambda x: print(x))

    input_task >> print_task

asyncio.run(print_task.call())

with DAG("awel_input_sources") as dag:
    from_data = InputOperator(input_source=InputSource.from_data({"k": 1}))
    show_data = MapOperator(map_function=lambda x: print("from_data:", x))
    from_data >> show_data
    from_call = InputOperator(input_source=InputSource.from_callable())
    show_call = MapOperator(map_function=lambda x: print("from_callable:", x))
    from_call >> show_call

with DAG("awel_iterable_source") as dag:
    from_items = InputOperator(input_source=InputSource.from_iterable(["a", "b", "c"]))

asyncio.run(show_data.call())
asyncio.run(show_call.call(call_data=[1, 2]))


async def print_items(t: InputOperator):
    print("from_iterable:", [i async for i in await t.call_stream()])


asyncio.run(print_items(from_items))
