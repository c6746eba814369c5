"""Getting started (1.1): a map called with call_data, three ways."""

import asyncio

from smmf_flow import DAG, InputOperator, MapOperator, SimpleCallDataInputSource

with DAG("awel_hello_world") as dag:
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))
task._blocking_call(call_data="world")

with DAG("awel_hello_world") as dag:
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))

asyncio.run(task.call(call_data="world"))

with DAG("awel_hello_world") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))
    input_task >> task

asyncio.run(task.call(call_data="world"))

with DAG("awel_hello_world") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))
    input_task.set_downstream(task)

asyncio.run(task.call(call_data="set_downstream"))

with DAG("awel_hello_world") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))
    task.set_upstream(input_task)

asyncio.run(task.call(call_data="set_upstream"))
