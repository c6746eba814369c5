"""Basic syntax (2.4): BranchOperator, and a join after the branch."""

import asyncio

from smmf_flow import (
    DAG,
    BranchOperator,
    InputOperator,
    JoinOperator,
    MapOperator,
    SimpleCallDataInputSource,
    is_empty_data,
)


def branch_even(x: int) -> bool:
    return x % 2 == 0


def branch_odd(x: int) -> bool:
    return not branch_even(x)


branch_mapping = {branch_even: "even_task", branch_odd: "odd_task"}


def even_func(x: int) -> int:
    print(f"Branch even, {x} is even, multiply by 10")
    return x * 10


def odd_func(x: int) -> int:
    print(f"Branch odd, {x} is odd, multiply by itself")
    return x * x


def combine_function(x: int, y: int) -> int:
    print(f"Received {x} and {y}")
    # Return the first non-empty data
    return x if not is_empty_data(x) else y


with DAG("awel_branch_operator") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = BranchOperator(branches=branch_mapping)
    even_task = MapOperator(task_name="even_task", map_function=even_func)
    odd_task = MapOperator(task_name="odd_task", map_function=odd_func)
    join_task = JoinOperator(combine_function=combine_function, can_skip_in_branch=False)
    input_task >> task >> even_task >> join_task
    input_task >> task >> odd_task >> join_task

print("First call, input is 5")
assert asyncio.run(join_task.call(call_data=5)) == 25
print("=" * 80)
print("Second call, input is 6")
assert asyncio.run(join_task.call(call_data=6)) == 60


class MyBranchOperator(BranchOperator[int, int]):
    def __init__(self, even_task_name: str, odd_task_name: str, **kwargs):
        self.even_task_name = even_task_name
        self.odd_task_name = odd_task_name
        super().__init__(**kwargs)

    async def branches(self):
        return {branch_even: self.even_task_name, branch_odd: self.odd_task_name}


with DAG("awel_branch_operator_subclass") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = MyBranchOperator(even_task_name="even_task", odd_task_name="odd_task")
    even_task = MapOperator(task_name="even_task", map_function=even_func)
    odd_task = MapOperator(task_name="odd_task", map_function=odd_func)
    join_task = JoinOperator(combine_function=combine_function)
    input_task >> task >> even_task >> join_task
    input_task >> task >> odd_task >> join_task

print("Subclass, input is 7")
print(asyncio.run(join_task.call(call_data=7)))
print("Subclass, input is 8")
print(asyncio.run(join_task.call(call_data=8)))

with DAG("awel_branch_unnamed_child") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = BranchOperator(branches={lambda x: x > 0: "positive"})
    positive = MapOperator(task_name="positive", map_function=lambda x: f"positive {x}")
    always = MapOperator(task_name="always", map_function=lambda x: f"always {x}")
    join_task = JoinOperator(combine_function=lambda a, b: f"{a} | {b}")
    input_task >> task >> positive >> join_task
    task >> always >> join_task

print("A child no branch names runs:")
print(asyncio.run(join_task.call(call_data=1)))
print(asyncio.run(join_task.call(call_data=-1)))
