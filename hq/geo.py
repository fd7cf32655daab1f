"""Distances on the earth for dispatch: great-circle distance and a bounding box that an index
on (lat, lon) can answer, so that only the stores inside it are measured exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Box:
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


def bounding_box(lat: float, lon: float, radius_km: float) -> Box:
    """A lat/lon box holding every point within ``radius_km`` of (lat, lon). Near a pole or the
    antimeridian it widens to the whole range of longitudes (chains do not sell there)."""
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    min_lat, max_lat = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    cos_lat = math.cos(math.radians(max(abs(min_lat), abs(max_lat))))
    if cos_lat < 1e-6:
        return Box(min_lat, max_lat, -180.0, 180.0)
    dlon = math.degrees(radius_km / (EARTH_RADIUS_KM * cos_lat))
    if dlon >= 180.0 or lon - dlon < -180.0 or lon + dlon > 180.0:
        return Box(min_lat, max_lat, -180.0, 180.0)
    return Box(min_lat, max_lat, lon - dlon, lon + dlon)
