"""deployflow: release pipelines as Airflow DAGs. This package's core imports no Airflow."""
