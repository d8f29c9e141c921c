"""a2v server: gRPC audio-to-video service backed by models on Triton Inference Server."""
