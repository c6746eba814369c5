"""Basic syntax (2.5-2.7): streamify, unstreamify and transform_stream."""

import asyncio
from collections.abc import AsyncIterator

from smmf_flow import (
    DAG,
    StreamifyAbsOperator,
    TransformStreamAbsOperator,
    UnstreamifyAbsOperator,
)


class NumberProducerOperator(StreamifyAbsOperator[int, int]):
    """Create a stream of numbers from 0 to `n-1`"""

    async def streamify(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


with DAG("numbers_dag") as dag:
    task = NumberProducerOperator()


async def print_stream(t, n: int):
    # Call the streaming operator by `call_stream` method
    async for i in await t.call_stream(call_data=n):
        print(i)


asyncio.run(print_stream(task, 10))


class MockLLMService(StreamifyAbsOperator[str, str]):
    """Mock a streaming LLM service"""

    def __init__(self, mock_data: list[str], **kwargs):
        self.mock_data = mock_data
        super().__init__(**kwargs)

    async def streamify(self, user_input: str) -> AsyncIterator[str]:
        for data in self.mock_data:
            yield data


with DAG("mock_llm_service_dag") as dag:
    task = MockLLMService(mock_data=["Hello, ", "how ", "can ", "I ", "help ", "you?"])


async def print_text_stream(t, user_input: str):
    async for i in await t.call_stream(call_data=user_input):
        print(i, end="")
    print()


asyncio.run(print_text_stream(task, "Hi"))


class SumOperator(UnstreamifyAbsOperator[int, int]):
    """Unstreamify the stream of numbers"""

    async def unstreamify(self, it: AsyncIterator[int]) -> int:
        return sum([i async for i in it])


with DAG("sum_dag") as dag:
    task = NumberProducerOperator()
    sum_task = SumOperator()
    task >> sum_task

print(asyncio.run(sum_task.call(call_data=5)))
print(asyncio.run(sum_task.call(call_data=10)))


class NumberDoubleOperator(TransformStreamAbsOperator[int, int]):
    async def transform_stream(self, it: AsyncIterator) -> AsyncIterator[int]:
        async for i in it:
            # Double the number
            yield i * 2


with DAG("numbers_dag") as dag:
    task = NumberProducerOperator()
    double_task = NumberDoubleOperator()
    sum_task = SumOperator()
    task >> double_task >> sum_task

asyncio.run(print_stream(double_task, 4))
print(asyncio.run(sum_task.call(call_data=4)))
