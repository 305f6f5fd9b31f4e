from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task

from kedro.framework.session import KedroSession
from kedro.framework.project import configure_project

# Kedro settings required to run your pipeline
env = "local"
pipeline_name = "train_cyclegan"
# the project folder (conf/, data/, mlruns.db): $TRANSFIGURE_PROJECT_PATH, else the task's working directory
project_path = Path(os.environ.get("TRANSFIGURE_PROJECT_PATH") or Path.cwd())
package_name = "transfigure"
conf_source = "" or project_path / "conf"


def _run_kedro_node(node_names=None, namespaces=None):
    """Run a Kedro pipeline slice. Pass node_names for regular node groups or namespaces for namespace groups."""
    os.chdir(project_path)  # relative paths in the parameters (output_dir, data, the MLflow store) start there
    configure_project(package_name)
    with KedroSession.create(project_path=project_path, env=env, conf_source=conf_source) as session:
        if namespaces is not None:
            session.run(pipeline_names=[pipeline_name], namespaces=namespaces)
        else:
            session.run(pipeline_names=[pipeline_name], node_names=node_names)


@dag(
    dag_id="transfigure-train-cyclegan",
    start_date=datetime(2023,1,1),
    max_active_runs=3,
    schedule="@once",
    catchup=False,
    default_args=dict(
        owner="airflow",
        depends_on_past=False,
        email_on_failure=False,
        email_on_retry=False,
        retries=0,
        retry_delay=timedelta(minutes=5)
    ),
)
def transfigure_train_cyclegan():

    @task(task_id="cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid")
    def cyclegan_prepare_dataset_cyclegan_describe_images_cyclegan_validate_images_cyclegan_require_valid():
        _run_kedro_node(node_names=["cyclegan.prepare_dataset", "cyclegan.describe_images", "cyclegan.validate_images", "cyclegan.require_valid"])

    @task(task_id="cyclegan-train")
    def cyclegan_train():
        _run_kedro_node(node_names=["cyclegan.train"])

    @task(task_id="cyclegan-register")
    def cyclegan_register():
        _run_kedro_node(node_names=["cyclegan.register"])

    @task(task_id="cyclegan-training-curves")
    def cyclegan_training_curves():
        _run_kedro_node(node_names=["cyclegan.training_curves"])

    @task(task_id="cyclegan-evaluate")
    def cyclegan_evaluate():
        _run_kedro_node(node_names=["cyclegan.evaluate"])

    @task(task_id="cyclegan-promote")
    def cyclegan_promote():
        _run_kedro_node(node_names=["cyclegan.promote"])

    tasks = {
        "cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid": cyclegan_prepare_dataset_cyclegan_describe_images_cyclegan_validate_images_cyclegan_require_valid(),
        "cyclegan-train": cyclegan_train(),
        "cyclegan-register": cyclegan_register(),
        "cyclegan-training-curves": cyclegan_training_curves(),
        "cyclegan-evaluate": cyclegan_evaluate(),
        "cyclegan-promote": cyclegan_promote(),
    }
    tasks["cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid"] >> tasks["cyclegan-train"]
    tasks["cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid"] >> tasks["cyclegan-register"]
    tasks["cyclegan-train"] >> tasks["cyclegan-register"]
    tasks["cyclegan-train"] >> tasks["cyclegan-training-curves"]
    tasks["cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid"] >> tasks["cyclegan-evaluate"]
    tasks["cyclegan-register"] >> tasks["cyclegan-evaluate"]
    tasks["cyclegan-prepare-dataset-cyclegan-describe-images-cyclegan-validate-images-cyclegan-require-valid"] >> tasks["cyclegan-promote"]
    tasks["cyclegan-register"] >> tasks["cyclegan-promote"]
    tasks["cyclegan-evaluate"] >> tasks["cyclegan-promote"]


transfigure_train_cyclegan()