"""Region codes: ISO 3166-2 for Chinese provinces, ISO 3166-1 alpha-2 otherwise.

`normalize_region` turns what purchase exports contain ("广东", "广东省",
"Guangdong", "cn-gd") into one code, so that factor lookups and report totals
group the same place under the same key.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pycountry

# Code, Chinese name (full and short) and romanised names of the 31 provincial
# divisions of mainland China, as ISO 3166-2:CN lists them.
CHINA_PROVINCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("CN-BJ", "北京市", "北京", ("Beijing",)),
    ("CN-TJ", "天津市", "天津", ("Tianjin",)),
    ("CN-HE", "河北省", "河北", ("Hebei",)),
    ("CN-SX", "山西省", "山西", ("Shanxi",)),
    ("CN-NM", "内蒙古自治区", "内蒙古", ("Inner Mongolia", "Nei Mongol")),
    ("CN-LN", "辽宁省", "辽宁", ("Liaoning",)),
    ("CN-JL", "吉林省", "吉林", ("Jilin",)),
    ("CN-HL", "黑龙江省", "黑龙江", ("Heilongjiang",)),
    ("CN-SH", "上海市", "上海", ("Shanghai",)),
    ("CN-JS", "江苏省", "江苏", ("Jiangsu",)),
    ("CN-ZJ", "浙江省", "浙江", ("Zhejiang",)),
    ("CN-AH", "安徽省", "安徽", ("Anhui",)),
    ("CN-FJ", "福建省", "福建", ("Fujian",)),
    ("CN-JX", "江西省", "江西", ("Jiangxi",)),
    ("CN-SD", "山东省", "山东", ("Shandong",)),
    ("CN-HA", "河南省", "河南", ("Henan",)),
    ("CN-HB", "湖北省", "湖北", ("Hubei",)),
    ("CN-HN", "湖南省", "湖南", ("Hunan",)),
    ("CN-GD", "广东省", "广东", ("Guangdong",)),
    ("CN-GX", "广西壮族自治区", "广西", ("Guangxi", "Guangxi Zhuang")),
    ("CN-HI", "海南省", "海南", ("Hainan",)),
    ("CN-CQ", "重庆市", "重庆", ("Chongqing",)),
    ("CN-SC", "四川省", "四川", ("Sichuan",)),
    ("CN-GZ", "贵州省", "贵州", ("Guizhou",)),
    ("CN-YN", "云南省", "云南", ("Yunnan",)),
    ("CN-XZ", "西藏自治区", "西藏", ("Tibet", "Xizang")),
    ("CN-SN", "陕西省", "陕西", ("Shaanxi",)),
    ("CN-GS", "甘肃省", "甘肃", ("Gansu",)),
    ("CN-QH", "青海省", "青海", ("Qinghai",)),
    ("CN-NX", "宁夏回族自治区", "宁夏", ("Ningxia", "Ningxia Hui")),
    (
        "CN-XJ",
        "新疆维吾尔自治区",
        "新疆",
        ("Xinjiang", "Xinjiang Uygur", "Xinjiang Uyghur"),
    ),
)

PROVINCE_CODES = frozenset(code for code, *_ in CHINA_PROVINCES)

# Country names in Chinese and common short forms that pycountry does not list.
COUNTRY_ALIASES = {
    "中国": "CN",
    "中华人民共和国": "CN",
    "中国大陆": "CN",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "英国": "GB",
    "usa": "US",
    "美国": "US",
    "香港": "HK",
    "澳门": "MO",
    "台湾": "TW",
    "eire": "IE",
}

# ISO 3166-2 lists Hong Kong, Macao and Taiwan under CN, but greenloop keys them by
# their ISO 3166-1 codes, as the purchase convention does for every non-province.
_CN_SUBDIVISIONS_AS_COUNTRIES = {"CN-HK": "HK", "CN-MO": "MO", "CN-TW": "TW"}

_ROMAN_SUFFIXES = re.compile(r"\s+(sheng|shi|zizhiqu|province|municipality|region)$")
_SPACES = re.compile(r"[\s_]+")


def _alias_key(value: str) -> str:
    return _SPACES.sub(" ", value.strip().casefold())


@lru_cache(maxsize=1)
def _province_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for code, full_name, short_name, roman_names in CHINA_PROVINCES:
        aliases[_alias_key(code)] = code
        aliases[_alias_key(full_name)] = code
        aliases[_alias_key(short_name)] = code
        for roman in roman_names:
            aliases[_alias_key(roman)] = code
            aliases[_alias_key(roman + " Province")] = code
    for subdivision in pycountry.subdivisions.get(country_code="CN") or ():
        if subdivision.code in PROVINCE_CODES:
            aliases[_alias_key(subdivision.name)] = subdivision.code
    return aliases


def _lookup_subdivision_code(value: str) -> str | None:
    upper = value.strip().upper().replace("_", "-")
    if not re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{1,3}", upper):
        return None
    if upper in PROVINCE_CODES:
        return upper
    if upper in _CN_SUBDIVISIONS_AS_COUNTRIES:
        return _CN_SUBDIVISIONS_AS_COUNTRIES[upper]
    if upper.startswith("CN-"):
        return None
    if pycountry.subdivisions.get(code=upper) is None:
        return None
    return upper[:2]


def _lookup_country(value: str) -> str | None:
    key = _alias_key(value)
    if key in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[key]
    try:
        country = pycountry.countries.lookup(value.strip())
    except LookupError:
        return None
    return str(country.alpha_2)


@lru_cache(maxsize=4096)
def normalize_region(value: str | None) -> str | None:
    """Return the region code for a province or country name or code.

    Chinese provinces come back as ISO 3166-2 codes ("广东省" -> "CN-GD"), every
    other place as its ISO 3166-1 alpha-2 country code ("United Kingdom" ->
    "GB", "US-CA" -> "US"). Returns None for an empty or unknown value, so the
    caller can quarantine the row or fall back to the national factor.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None

    subdivision = _lookup_subdivision_code(text)
    if subdivision is not None:
        return subdivision

    key = _alias_key(text)
    province = _province_aliases().get(key)
    if province is None:
        province = _province_aliases().get(_ROMAN_SUFFIXES.sub("", key))
    if province is not None:
        return province

    return _lookup_country(text)


def country_of(region: str) -> str:
    """Return the ISO 3166-1 alpha-2 country of a normalized region code."""
    return region[:2]
