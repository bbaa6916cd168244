"""Stand-in for gradio.processing_utils (see __init__)."""
import hashlib
import io


def encode_pil_to_bytes(img, format="png"):
    buf = io.BytesIO()
    img.save(buf, format=format)
    return buf.getvalue()


def hash_bytes(data):
    return hashlib.sha256(data).hexdigest()


def save_pil_to_cache(*args, **kwargs):
    raise NotImplementedError
