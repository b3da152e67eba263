"""The app's services on top of the core library: ``explore`` (everything the Explore page
computes for one image), ``figures`` (images and plotly figures of results; depends on explore,
never the reverse) and ``jobs`` (background training runs). Core maths lives in the sibling
packages (data, models, interpret, metrics, attacks, training, evaluate) and never imports these."""
