"""Optional compiled kernels (see ``setup.py``); pure-Python fallbacks live beside their users."""
