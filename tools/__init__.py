"""Project scripts (paper-network conversion, demo data, training search) and the app driver shared
by the browser tests and the app benchmark; not part of the installed package."""
