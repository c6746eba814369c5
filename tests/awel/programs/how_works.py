"""Getting started (1.2): visualize_dag prints the tree and draws the DAG."""

import asyncio
import contextlib
import io
import os
import sys

from smmf_flow import DAG, InputOperator, MapOperator, SimpleCallDataInputSource

with DAG("awel_hello_world") as dag:
    input_task = InputOperator(input_source=SimpleCallDataInputSource())
    task = MapOperator(map_function=lambda x: print(f"Hello, {x}!"))
    input_task >> task

# the tree AWEL prints names nodes by generated ids: count its lines only
tree = io.StringIO()
with contextlib.redirect_stdout(tree):
    dag.visualize_dag(view=False, directory=sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
print("tree lines:", len(tree.getvalue().splitlines()))
asyncio.run(task.call(call_data="world"))
