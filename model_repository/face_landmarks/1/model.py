"""Triton python-backend model: faces, their 478-point meshes and 68 landmarks in one image.

Tensors (see config.pbtxt, the single source of truth for names and types):
  IMAGE      uint8  [H, W, 3]   RGB
  BOXES      fp32   [N, 4]      x0, y0, x1, y1, largest face first
  SCORES     fp32   [N]
  LANDMARKS  fp32   [N, 68, 2]  the 68 iBUG points, taken from the mesh
  MESH       fp32   [N, 478, 3] MediaPipe's face mesh: x, y, depth in pixels
N is 0 when no face is found: that is an answer, not an error (the caller decides).
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from face_mesh import N_MESH, FaceAnalyzer


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self._out_dtypes = {
            out["name"]: pb_utils.triton_string_to_numpy(out["data_type"])
            for out in config["output"]
        }
        self._analyzer = FaceAnalyzer()

    def finalize(self) -> None:
        self._analyzer.close()

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(
                            f"[INVALID_ARGUMENT] IMAGE must be [H, W, 3] with H, W >= 16, "
                            f"got {list(image.shape)}"
                        )
                    )
                )
                continue
            faces = self._analyzer.analyze(np.ascontiguousarray(image))
            boxes = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
            scores = np.array([f.score for f in faces], dtype=np.float32)
            marks = np.array([f.landmarks for f in faces], dtype=np.float32).reshape(-1, 68, 2)
            mesh = np.array([f.mesh for f in faces], dtype=np.float32).reshape(-1, N_MESH, 3)
            outputs = [
                pb_utils.Tensor("BOXES", boxes.astype(self._out_dtypes["BOXES"])),
                pb_utils.Tensor("SCORES", scores.astype(self._out_dtypes["SCORES"])),
                pb_utils.Tensor("LANDMARKS", marks.astype(self._out_dtypes["LANDMARKS"])),
                pb_utils.Tensor("MESH", mesh.astype(self._out_dtypes["MESH"])),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
