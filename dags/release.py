"""Release DAGs, one per service in the catalog (include/services/*.yaml).

Kept thin: the factory reads YAML only, so this file imports in well under a
second and touches no network.
"""

from deployflow.airflow.dag_factory import release_dags

globals().update(release_dags())
