"""Deployment: MINDIR / ONNX export, the integer ONNX model, and running exported models."""
