"""The Triton endpoints a server is given (settings.triton_endpoints, inference/pool.py): a
list, names re-resolved to every address they have, and nothing ready when nothing answers."""

from __future__ import annotations

import pytest

from a2v_server.inference.pool import TritonPool
from a2v_server.settings import Settings, triton_endpoints


def test_a_list_and_names_are_accepted():
    assert triton_endpoints(" a:1, dns:triton-headless:8001 ,") == [
        "a:1",
        "dns:triton-headless:8001",
    ]


@pytest.mark.parametrize("spec", ["", "a", "a:x", ":1", "dns:name"])
def test_entries_without_a_port_are_refused(spec):
    with pytest.raises(ValueError, match="triton_url"):
        triton_endpoints(spec)


def test_a_launched_triton_is_one_endpoint():
    with pytest.raises(ValueError, match="launch_triton starts one Triton"):
        Settings(launch_triton=True, triton_url="a:1,b:2").validated()


async def test_a_name_becomes_an_endpoint_per_address_and_none_is_ready():
    pool = TritonPool("127.0.0.1:1,dns:localhost:2")
    try:
        assert await pool.refresh() is False  # nothing listens on ports 1 and 2
        urls = {e.url for e in pool.endpoints}
        assert "127.0.0.1:1" in urls and "127.0.0.1:2" in urls
        assert not any(e.healthy for e in pool.endpoints)
    finally:
        await pool.aclose()
