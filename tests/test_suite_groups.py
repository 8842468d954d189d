"""The suite's own scheduling: under `--dist loadgroup` (make test) every test with an `xdist_group`
mark carries '@<group>' in its node id, which is what keeps a group (a family's shared compiled
step) on one worker. A pytest/pytest-xdist pair that stops reading the suffix silently splits every
group and doubles the suite's compile time (tests/conftest.py's collection hook)."""


def test_grouped_tests_carry_their_group_in_the_node_id(request):
    """Under --dist loadgroup (make test) each grouped test's id ends with its groups; otherwise the
    ids are left as pytest made them."""
    loadgroup = getattr(request.config.option, "loadgroup", False)
    grouped = [item for item in request.session.items if any(item.iter_markers("xdist_group"))]
    assert grouped or len(request.session.items) < 100  # the whole suite has the family steps' groups
    for item in grouped:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        assert item.nodeid.endswith("@" + "_".join(names)) == bool(loadgroup), item.nodeid


def test_tests_sharing_a_module_fixture_share_a_group(request):
    """A module-scoped fixture of the test's own module (a trained model, a filled batch) is built
    by every worker that runs one of its tests: under --dist loadgroup its tests share a group."""
    from conftest import shared_module_fixtures
    loadgroup = getattr(request.config.option, "loadgroup", False)
    users = [item for item in request.session.items if shared_module_fixtures(item)]
    assert users or len(request.session.items) < 100
    for item in users:
        assert any(item.iter_markers("xdist_group")) or not loadgroup, item.nodeid
    trained = {item.nodeid.split("@")[-1] for item in users if "trained" in item.fixturenames
               and item.module.__name__ == "test_shiftnet"}
    assert len(trained) == 1 or not trained or not loadgroup
