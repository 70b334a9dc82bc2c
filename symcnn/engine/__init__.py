"""The engines: NumPy's run, the exact (SymPy) engine, its algebra and notation."""
