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
