"""Calling a TensorRT-LLM model on Triton through tritonclient's HTTP API."""

import numpy as np
import tritonclient.http as httpclient

PREAMBLE = """You are a SQL assistant for a PostgreSQL 16 warehouse. Tables: orders(id, customer_id, total,
created_at), customers(id, name, country), items(order_id, sku, qty, price). Write one query, no
explanation, use explicit JOINs, never SELECT *, and always qualify columns with the table alias."""


def to_sql(question: str) -> str:
    triton_client = httpclient.InferenceServerClient(url="localhost:8000")
    text = httpclient.InferInput("text_input", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[PREAMBLE + "\nQuestion: " + question + "\nSQL:"]], dtype=object))
    max_tokens = httpclient.InferInput("max_tokens", [1, 1], "INT32")
    max_tokens.set_data_from_numpy(np.array([[128]], dtype=np.int32))
    result = triton_client.infer("ensemble", inputs=[text, max_tokens])
    return result.as_numpy("text_output")[0][0].decode()
