"""call vs call_stream, and the keywords every operator takes."""

import asyncio
from collections.abc import AsyncIterator

from smmf_flow import (
    DAG,
    InputOperator,
    JoinOperator,
    MapOperator,
    SimpleCallDataInputSource,
    StreamifyAbsOperator,
    UnstreamifyAbsOperator,
)


class Words(StreamifyAbsOperator[str, str]):
    async def streamify(self, text: str) -> AsyncIterator[str]:
        for word in text.split():
            yield word


class CountWords(UnstreamifyAbsOperator[str, int]):
    async def unstreamify(self, it: AsyncIterator[str]) -> int:
        return len([w async for w in it])


with DAG("call_dag") as dag:
    words = Words(task_name="words")
    count = CountWords(task_name="count", task_id="count_id")
    shout = MapOperator(map_function=lambda n: f"{n} words", task_name="shout")
    words >> count >> shout


async def main():
    # call_stream on a stream operator: the chunks, one by one
    async for w in await words.call_stream(call_data="call and call stream"):
        print("chunk:", w)
    # call_stream on a value operator: the value as a one-item stream
    items = [v async for v in await shout.call_stream(call_data="one two three")]
    print("one-item stream:", items)
    # call on a value operator: the value
    print("call:", await shout.call(call_data="a b"))
    print("call:", await count.call("a b c d"))


asyncio.run(main())
print("blocking:", shout._blocking_call(call_data="x y"))
print("names:", words.node_name, count.node_name, count.node_id, shout.node_name)

with DAG("many_calls") as dag:
    start = InputOperator(input_source=SimpleCallDataInputSource())
    left = MapOperator(map_function=lambda x: x * 2, task_name="left")
    right = MapOperator(map_function=lambda x: x + 1, task_name="right")
    both = JoinOperator(combine_function=lambda a, b: (a, b))
    start >> left >> both
    start >> right >> both


async def concurrent_calls():
    return await asyncio.gather(*(both.call(call_data=i) for i in range(5)))


print("concurrent:", asyncio.run(concurrent_calls()))
