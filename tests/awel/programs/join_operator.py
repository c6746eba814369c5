"""Basic syntax (2.3): JoinOperator, and a join of two paths."""

import asyncio

from smmf_flow import DAG, InputOperator, JoinOperator, MapOperator, SimpleCallDataInputSource

with DAG("sum_numbers_dag") as dag:
    # Create a input task to receive data from call_data
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task1 = MapOperator(map_function=lambda x: x["t1"])
    task2 = MapOperator(map_function=lambda x: x["t2"])
    sum_task = JoinOperator(combine_function=lambda x, y: x + y)
    input_task >> task1 >> sum_task
    input_task >> task2 >> sum_task

if asyncio.run(sum_task.call(call_data={"t1": 5, "t2": 8})) == 13:
    print("Success!")
else:
    print("Failed")

with DAG("two_paths_dag") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    upper = MapOperator(map_function=lambda s: s.upper())
    exclaim = MapOperator(map_function=lambda s: s + "!")
    length = MapOperator(map_function=len)
    report = JoinOperator(combine_function=lambda text, n: f"{text} ({n} chars)")
    input_task >> upper >> exclaim >> report
    input_task >> length >> report

print(asyncio.run(report.call(call_data="two paths")))
print(asyncio.run(exclaim.call(call_data="only the first path")))
