"""Streamlit-side helpers shared by app.py and the page scripts in pages/ (widgets, cached loaders, layout)."""
