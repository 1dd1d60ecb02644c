"""Airflow adapters: operators and the DAG factory. Thin: they call the core."""
