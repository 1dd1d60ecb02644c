"""SQLite settings of the local stack's metadata database (airflow.cfg names these).

The scheduler, DAG processor, API server and every task runner write to one
SQLite file. pysqlite waits 5 s for a lock by default, and on 2 busy cores a
writer can hold it longer, which surfaced as HTTP 500 "Database error" on
REST triggers. Waiting longer turns that into a short delay; the stack also
puts the file in WAL mode so that readers never block the writer.
"""

CONNECT_ARGS = {"timeout": 60}
