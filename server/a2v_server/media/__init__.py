"""Media layer: decoding user images and audio, encoding fragmented MP4 (PyAV/FFmpeg)."""
