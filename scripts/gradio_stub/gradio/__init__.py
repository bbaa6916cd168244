"""A stand-in for Gradio, for timing the app's handlers where Gradio is not installed (the lent GPU machines
have no Gradio and cannot fetch it). Handlers only raise gr.Error/gr.Warning, report gr.Progress and return
gr.update/gr.skip values; the layout classes are never built here. Never on the path of the real app."""


class Error(Exception):
    pass


def Warning(*args, **kwargs):  # noqa: N802 (Gradio's name)
    return None


Info = Warning


class Progress:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return None

    def tqdm(self, iterable, *args, **kwargs):
        return iterable


def update(**kwargs):
    return {"__type__": "update", **kwargs}


def skip():
    return {"__type__": "update"}


class _Component:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *a, **k: None


class SelectData:
    pass


def __getattr__(name):      # gr.Image, gr.Row, … — only named in annotations and layout code
    return _Component
