"""The Gradio app's parts: one module per view plus shared model access, pictures and plots.
`jdx.ui.layout.build()` assembles them; `app.py` launches it."""
