"""The minimal app: handlers called directly, and one launched-app round trip through gradio_client."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
gr = pytest.importorskip("gradio")
app = pytest.importorskip("app")


def test_predict_handler():
    from PIL import Image
    probs, seen = app.predict(Image.open(ROOT / "assets/examples/1-trouser-0.png"))
    assert max(probs, key=probs.get) == "Trouser" and seen.size == (224, 224)
    with pytest.raises(gr.Error):
        app.predict(None)


def test_launched_round_trip():
    client_mod = pytest.importorskip("gradio_client")
    demo = app.build()
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = client_mod.Client(demo.local_url, verbose=False)
        result = client.predict(client_mod.handle_file(str(ROOT / "assets/examples/7-sneaker-0.png")), api_name="/predict")
        assert result[0]["label"] == "Sneaker"
    finally:
        demo.close()
