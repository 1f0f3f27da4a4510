import pytest

from freight.units import format_bytes, format_duration, parse_bytes, parse_cpus, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("1000kb", 10**6),
        (4096, 4096),
    ],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("250ms", 0.25)]
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


def test_parse_cpus() -> None:
    assert parse_cpus("1.5") == 1.5
    assert parse_cpus("500m") == 0.5
    with pytest.raises(ValueError, match="more than 0"):
        parse_cpus("0")


@pytest.mark.parametrize("bad", ["lots", "12Q", "-1", "1.2.3"])
def test_bad_sizes_say_how_to_write_them(bad: str) -> None:
    with pytest.raises(ValueError, match="512M"):
        parse_bytes(bad)


def test_bad_durations() -> None:
    with pytest.raises(ValueError, match="10m"):
        parse_duration("1h30")


def test_format() -> None:
    assert format_bytes(64 * 1024**2) == "64.0M"
    assert format_duration(0.25) == "250 ms"
    assert format_duration(0.0004) == "0.4 ms"  # was "0ms"
    assert format_duration(0.0125) == "12.5 ms"
    assert format_duration(0) == "0.0 ms"
    assert format_duration(245) == "4m05s"


@pytest.mark.parametrize("bad", [None, [1], {"a": 1}, True])
def test_wrong_types_are_value_errors_not_crashes(bad: object) -> None:
    for parse in (parse_bytes, parse_duration, parse_cpus):
        with pytest.raises(ValueError, match="expected"):
            parse(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), "inf", "nan"])
def test_infinity_and_nan_are_value_errors(bad: object) -> None:
    # YAML's .inf/.nan are floats: a size raised OverflowError (a traceback), a duration or cpus passed
    for parse in (parse_bytes, parse_duration, parse_cpus):
        with pytest.raises(ValueError):
            parse(bad)  # type: ignore[arg-type]
