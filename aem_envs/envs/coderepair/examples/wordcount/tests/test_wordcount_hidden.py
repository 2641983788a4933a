from wordcount import most_common


def test_most_common_ties_alphabetical():
    assert most_common("z y x y z", 2) == ["y", "z"]
