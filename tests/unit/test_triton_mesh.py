"""TritonBackend and the face mesh, against a stand-in tritonclient: face_landmarks' MESH reaches
the pipeline's faces (an older face model without it still works), and talking_avatar gets it as
its optional MESH input when it declares one."""

from __future__ import annotations

import numpy as np
from triton_channel import UnaryChannel

from a2v_server.inference.backend import AvatarOptions
from a2v_server.inference.triton import TritonBackend


class _Client:
    """A tritonclient stand-in: face_landmarks answers ``outputs`` (on the client's channel, as
    TritonBackend calls it); talking_avatar declares ``avatar_inputs``."""

    def __init__(self, outputs: dict[str, np.ndarray], avatar_inputs: list[str]) -> None:
        self.outputs = outputs
        self.avatar_inputs = avatar_inputs
        self._channel = UnaryChannel(lambda request: self.outputs)

    async def get_model_metadata(self, model, as_json=False):
        return {"inputs": [{"name": n} for n in self.avatar_inputs]}

    async def close(self):
        pass


def _outputs(with_mesh: bool) -> dict[str, np.ndarray]:
    out = {
        "BOXES": np.float32([[10, 20, 110, 140], [200, 20, 260, 90]]),
        "SCORES": np.float32([0.9, 0.8]),
        "LANDMARKS": np.zeros((2, 68, 2), np.float32),
    }
    if with_mesh:
        mesh = np.zeros((2, 478, 3), np.float32)
        mesh[1, 4] = (230, 60, -12)  # the second face's nose tip
        out["MESH"] = mesh
    return out


def _backend(client: _Client) -> TritonBackend:
    backend = TritonBackend("127.0.0.1:1")
    backend._client = client  # type: ignore[assignment]
    return backend


async def test_faces_carry_their_mesh_and_an_older_face_model_none():
    faces = await _backend(_Client(_outputs(True), [])).analyze_faces(np.zeros((8, 8, 3), np.uint8))
    assert [f.mesh.shape for f in faces if f.mesh is not None] == [(478, 3), (478, 3)]
    assert tuple(faces[1].mesh[4]) == (230, 60, -12)
    old = await _backend(_Client(_outputs(False), [])).analyze_faces(np.zeros((8, 8, 3), np.uint8))
    assert len(old) == 2 and all(f.mesh is None for f in old)


async def test_the_avatar_gets_the_mesh_only_when_its_model_declares_it():
    portrait = np.zeros((64, 64, 3), np.uint8)
    marks = np.zeros((68, 2), np.float32)
    mesh = np.arange(478 * 3, dtype=np.float32).reshape(478, 3)
    options = AvatarOptions(fps=25.0, seed=0)
    new = _backend(_Client({}, ["PORTRAIT", "LANDMARKS", "FPS", "AUDIO", "MESH", "SEED"]))
    stream = await new.open_avatar(portrait, marks, options, mesh=mesh)
    assert np.array_equal(stream._first["MESH"], mesh)
    assert "MESH" not in (await new.open_avatar(portrait, marks, options))._first
    old = _backend(_Client({}, ["PORTRAIT", "LANDMARKS", "FPS", "AUDIO", "SEED"]))
    assert "MESH" not in (await old.open_avatar(portrait, marks, options, mesh=mesh))._first
