"""Importers: turn a model of another framework (a torch module, an ONNX graph) into a
`Network` of the same graph nodes and DESIGN §9 semantics. Each importer is a subpackage that
imports its framework on use; this package imports none."""
