"""File I/O beside the pure layers: what reads and writes the disk, and makes key material.

Modules: keyfile (key files: load with permission checks, atomic save; `generate_key`).
The pure format lives in ``swimnet.security.keyfile``; this package only moves bytes.
"""
