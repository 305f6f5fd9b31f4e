"""Kedro pipelines, one package per stage (``nodes.py`` + ``pipeline.py``); ``transfigure.pipeline_registry`` names them."""
