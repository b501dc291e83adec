"""Produces the expected outputs of Spark's from_json and get_json_object for
the inputs in jobs/tests/data/json_cases.json, with pyspark 4.1 (local mode).
Run once when the cases change; its output is kept as test data:

    ~/.cache/ember/pyspark/bin/python jobs/tests/spark_reference.py

Ember's own functions are then checked against it by jobs/tests/spark_json.rs.
"""
import json
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

here = os.path.dirname(os.path.abspath(__file__))
cases = json.load(open(os.path.join(here, "data", "json_cases.json")))
spark = SparkSession.builder.master("local[1]").appName("ember-reference").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")

schema = cases["from_json_schema"]
rows = [(s,) for s in cases["from_json_inputs"]]
df = spark.createDataFrame(rows, "s STRING").select(F.from_json("s", schema).alias("d"))
from_json = [None if r.d is None else r.d.asDict() for r in df.collect()]

gjo = []
for doc, path in cases["get_json_object"]:
    r = spark.createDataFrame([(doc,)], "s STRING").select(F.get_json_object("s", path).alias("v")).collect()
    gjo.append(r[0].v)

out = {
    "spark_version": spark.version,
    "from_json_schema": schema,
    "from_json": [{"input": i, "output": o} for i, o in zip(cases["from_json_inputs"], from_json)],
    "get_json_object": [{"json": d, "path": p, "output": o} for (d, p), o in zip(cases["get_json_object"], gjo)],
}
with open(os.path.join(here, "data", "spark_json_expected.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False, default=str)
    f.write("\n")
print(f"wrote {len(from_json)} from_json and {len(gjo)} get_json_object results (Spark {spark.version})")
