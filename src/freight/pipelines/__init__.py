"""Pipelines: declarative ETL whose steps run as isolated jobs on the job platform."""
