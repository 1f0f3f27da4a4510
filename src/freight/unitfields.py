"""Field types for pydantic models that accept human units ("512M", "1.5", "10m") and store plain
numbers. Apart from freight.units so that formatting a size does not import pydantic."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from freight.units import parse_bytes, parse_cpus, parse_duration

Cpus = Annotated[float, BeforeValidator(parse_cpus)]
Bytes = Annotated[int, BeforeValidator(parse_bytes)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
