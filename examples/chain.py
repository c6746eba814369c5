"""A first flow: ``>>`` chaining, a fan-out that runs concurrently, and a join."""

import anyio

from smmf_flow import DAG, JoinOperator, MapOperator, Trace, map_operator


@map_operator
def words(text: str) -> list[str]:
    return text.split()


async def slow_count(items: list[str]) -> int:
    await anyio.sleep(0.1)  # stands in for I/O, e.g. a model call
    return len(items)


async def slow_longest(items: list[str]) -> str:
    await anyio.sleep(0.1)
    return max(items, key=len)


with DAG("text-stats") as dag:
    split = words()
    count = MapOperator(slow_count, name="count")
    longest = MapOperator(slow_longest, name="longest")
    report = JoinOperator(lambda n, word: f"{n} words, longest: {word!r}", name="report")
    split >> [count, longest]
    [count, longest] >> report

if __name__ == "__main__":
    trace = Trace()
    print(dag.run("independent branches of a flow run concurrently", trace=trace))
    for record in trace:
        print(f"  {record.name:<8} {record.state.value:<10} {record.duration * 1000:7.1f} ms")
