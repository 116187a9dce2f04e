"""A seeded, realistic sample of Chinese consumer purchases on credit.

The sample has a product catalogue: appliances with energy-label grades,
new-energy and petrol cars, metro and bus rides, organic and Green Food with
certificate codes, second-hand goods, and ordinary goods, some named with
misleading green words. It also has the registries that confirm part of the
catalogue, and purchases drawn from it. Amounts are in CNY, and merchant
category codes come from the Alipay list in the `iso18245` package. Every value
is synthetic.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import iso18245
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml

DEMO_AS_OF = date(2026, 11, 30)

# Province code, Chinese name, population in millions (2020 census, rounded).
PROVINCES = (
    ("CN-GD", "广东省", 126),
    ("CN-SD", "山东省", 102),
    ("CN-HA", "河南省", 99),
    ("CN-JS", "江苏省", 85),
    ("CN-SC", "四川省", 84),
    ("CN-HE", "河北省", 75),
    ("CN-HN", "湖南省", 66),
    ("CN-ZJ", "浙江省", 65),
    ("CN-AH", "安徽省", 61),
    ("CN-HB", "湖北省", 58),
    ("CN-GX", "广西壮族自治区", 50),
    ("CN-YN", "云南省", 47),
    ("CN-JX", "江西省", 45),
    ("CN-LN", "辽宁省", 43),
    ("CN-FJ", "福建省", 41),
    ("CN-SN", "陕西省", 40),
    ("CN-GZ", "贵州省", 38),
    ("CN-SX", "山西省", 35),
    ("CN-CQ", "重庆市", 32),
    ("CN-HL", "黑龙江省", 32),
    ("CN-XJ", "新疆维吾尔自治区", 26),
    ("CN-SH", "上海市", 25),
    ("CN-GS", "甘肃省", 25),
    ("CN-NM", "内蒙古自治区", 24),
    ("CN-JL", "吉林省", 24),
    ("CN-BJ", "北京市", 22),
    ("CN-TJ", "天津市", 14),
    ("CN-HI", "海南省", 10),
    ("CN-NX", "宁夏回族自治区", 7),
    ("CN-QH", "青海省", 6),
    ("CN-XZ", "西藏自治区", 4),
)

APPLIANCES = (
    # type id, Chinese name, model prefix, price range in CNY, grade weights 1..3
    ("room_air_conditioner", "空调 挂机 1.5匹 变频", "KFR-35GW/", (2300, 4800)),
    ("refrigerator", "冰箱 十字对开门 风冷无霜", "BCD-", (2800, 8900)),
    ("washing_machine", "滚筒洗衣机 10公斤 洗烘一体", "XQG100-", (1700, 4900)),
    ("television", "液晶电视 65英寸 4K", "TV65-", (2400, 6900)),
    ("water_heater", "电热水器 60升 一级能效", "F60-", (1100, 2900)),
    ("dishwasher", "洗碗机 13套 嵌入式", "WQP13-", (2900, 5900)),
    ("range_hood", "吸油烟机 侧吸式", "CXW-", (1500, 3900)),
    ("rice_cooker", "电饭煲 4升 IH", "IH40-", (299, 999)),
)
APPLIANCE_BRANDS = ("美的", "格力", "海尔", "海信", "小米", "TCL", "西门子", "方太")
GRADE_TEXT = {1: "新一级能效", 2: "二级能效", 3: "三级能效"}

NEV_MODELS = (
    # brand, model, kind, price in CNY
    ("比亚迪", "秦PLUS DM-i", "phev", 99800),
    ("比亚迪", "海豚", "bev", 116800),
    ("特斯拉", "Model 3", "bev", 235500),
    ("蔚来", "ET5", "bev", 298000),
    ("理想", "L7", "phev", 301800),
    ("五菱", "宏光MINIEV", "bev", 32800),
    ("小鹏", "MONA M03", "bev", 119800),
    ("吉利", "银河E5", "bev", 109800),
)
PETROL_CARS = (("大众", "朗逸 1.5L", 115900), ("丰田", "卡罗拉 1.2T", 119800))

TRANSIT = (
    # merchant id, merchant name, MCC, kind, fare range in CNY
    ("m-bjmetro", "北京地铁", 4111, "metro", (3, 8)),
    ("m-shmetro", "上海地铁", 4111, "metro", (3, 9)),
    ("m-gzmetro", "广州地铁", 4111, "metro", (2, 8)),
    ("m-szbus", "深圳巴士集团", 4131, "bus", (2, 2)),
    ("m-cdbus", "成都公交", 4131, "bus", (2, 2)),
    ("m-12306", "中国铁路12306", 4112, "rail", (54, 553)),
)
TRANSIT_WEIGHT = 24.0
SECOND_HAND = (
    ("m-xianyu", "闲鱼", 5931, "second_hand_platform"),
    ("m-zhuanzhuan", "转转", 5931, "second_hand_platform"),
    ("m-aihuishou", "爱回收", 5931, "second_hand_platform"),
    ("m-repair", "小修哥家电维修", 7699, "repair"),
)
SECOND_HAND_ITEMS = (
    ("二手 iPhone 13 128G 95新", "phone", (1800, 3200)),
    ("二手 联想 ThinkPad 笔记本", "laptop", (1200, 3500)),
    ("二手 实木书桌", "furniture", (200, 900)),
    ("二手 童装 一箱", "clothing", (40, 150)),
    ("旧书 三体 全集", "book", (30, 80)),
)
ORGANIC_FOODS = (
    ("有机大米 5kg", (69, 129)),
    ("有机纯牛奶 250ml×12", (59, 99)),
    ("有机鸡蛋 30枚", (39, 79)),
    ("有机蔬菜礼盒", (88, 198)),
)
GREEN_FOODS = (("绿色食品 东北大米 10kg", (59, 99)), ("绿色食品 苹果 5斤", (29, 59)))
ORDINARY = (
    # title, MCC, price range; several carry words that look green but are not claims
    ("绿色连衣裙 夏季新款", 5651, (89, 399)),
    ("纯棉T恤 男款", 5651, (39, 129)),
    ("天然大理石 茶几", 5712, (899, 2999)),
    ("环保购物袋 折叠", 5311, (9, 29)),
    ("生态友好 纯棉毛巾", 5311, (19, 59)),
    ("碳中和 精品咖啡豆", 5499, (68, 168)),
    ("节能 LED台灯", 5732, (59, 199)),
    ("100% recycled plastic 收纳箱", 5311, (39, 99)),
    ("手机壳 透明", 5732, (19, 49)),
    ("蓝牙耳机", 5732, (99, 599)),
    ("零食大礼包", 5411, (49, 129)),
    ("进口牛排 1kg", 5411, (99, 259)),
    ("炸鸡套餐", 5814, (29, 59)),
    ("95号汽油 加油", 5541, (200, 450)),
)
GROCERY_MERCHANTS = (
    ("m-hema", "盒马鲜生"),
    ("m-yonghui", "永辉超市"),
    ("m-jd", "京东"),
)


@dataclass(frozen=True)
class DemoSample:
    """The paths of a written demo sample and the date its registries hold on."""

    purchases: Path
    registries: Path
    as_of: date


def alipay_mcc_description(mcc: int) -> str:
    """Return the Alipay description of a merchant category code."""
    return str(iso18245.get_mcc(f"{mcc:04d}").alipay_description or "")


def build_catalogue(
    rng: np.random.Generator, products: int
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Return products with purchase weights and the registry rows that confirm some."""
    registries: dict[str, list[dict[str, Any]]] = {
        name: []
        for name in (
            "energy_label",
            "organic",
            "green_food",
            "nev_models",
            "merchants",
            "green_product",
            "environmental_label",
        )
    }
    catalogue: list[dict[str, Any]] = []
    for merchant_id, name, mcc, kind, fares in TRANSIT:
        registries["merchants"].append(
            {
                "merchant_id": merchant_id,
                "merchant_name": name,
                "category": "public_transport",
                "kind": kind,
                "source": "demo operator list",
            }
        )
        fare_values = range(fares[0], fares[1] + 1, max((fares[1] - fares[0]) // 12, 1))
        share = TRANSIT_WEIGHT / len(TRANSIT) / len(fare_values)
        if kind == "rail":
            share /= 8  # intercity rail tickets are rarer than metro and bus rides
        for fare in fare_values:
            catalogue.append(
                _product(
                    f"{name} 乘车 {fare}元",
                    mcc,
                    merchant_id,
                    name,
                    price=fare,
                    weight=share,
                    kind="transit",
                )
            )
    for merchant_id, name, _, kind in SECOND_HAND:
        registries["merchants"].append(
            {
                "merchant_id": merchant_id,
                "merchant_name": name,
                "category": "second_hand",
                "kind": kind,
                "source": "demo operator list",
            }
        )
    for brand, model, kind, price in NEV_MODELS:
        registries["nev_models"].append(
            {
                "brand": brand,
                "model": model,
                "vehicle_kind": kind,
                "catalogue_batch": "17",
                "catalogue_date": "2025-06-30",
            }
        )
        catalogue.append(
            _product(
                f"{brand} {model} 新能源汽车",
                5511,
                "m-autohome",
                "汽车之家",
                brand=brand,
                model=model,
                price=price,
                weight=0.06,
                kind="vehicle",
            )
        )
    for brand, model, price in PETROL_CARS:
        catalogue.append(
            _product(
                f"{brand} {model} 燃油车",
                5511,
                "m-autohome",
                "汽车之家",
                brand=brand,
                model=model,
                price=price,
                weight=0.04,
                kind="vehicle",
            )
        )

    remaining = max(products - len(catalogue), 200)
    shares = {
        "appliance": 0.2,
        "organic": 0.1,
        "green_food": 0.05,
        "second_hand": 0.1,
        "ordinary": 0.55,
    }
    weights = {
        "appliance": 8.0,
        "organic": 5.0,
        "green_food": 3.0,
        "second_hand": 3.0,
        "ordinary": 55.0,
    }
    for kind, share in shares.items():
        count = max(int(remaining * share), 5)
        for index in range(count):
            catalogue.append(_make(kind, index, rng, registries, weights[kind] / count))
    return catalogue, registries


def _product(
    title: str,
    mcc: int,
    merchant_id: str,
    merchant_name: str,
    *,
    price: float,
    weight: float,
    kind: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "title": title,
        "mcc": mcc,
        "merchant_id": merchant_id,
        "merchant_name": merchant_name,
        "price": float(price),
        "weight": weight,
        "kind": kind,
        "brand": None,
        "model": None,
        "grade": None,
        "certificate_id": None,
        "sku": None,
        **extra,
    }


def _make(
    kind: str,
    index: int,
    rng: np.random.Generator,
    registries: dict[str, list[dict[str, Any]]],
    weight: float,
) -> dict[str, Any]:
    if kind == "appliance":
        type_id, name, prefix, (low, high) = APPLIANCES[index % len(APPLIANCES)]
        brand = APPLIANCE_BRANDS[(index // len(APPLIANCES)) % len(APPLIANCE_BRANDS)]
        model = f"{prefix}{index:05d}{'ABCDEFGH'[index % 8]}"
        grade = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
        stated = grade
        roll = rng.random()
        if roll < 0.8:
            registries["energy_label"].append(
                {
                    "brand": brand,
                    "model_number": model,
                    "appliance_type": type_id,
                    "grade": grade,
                    "valid_until": "",
                }
            )
        elif roll < 0.9:
            stated = 1  # the title claims grade 1 and no registry confirms it
        title = f"{brand} {name} {GRADE_TEXT.get(stated, '')} {model}".strip()
        return _product(
            title,
            5722,
            "m-suning",
            "苏宁易购",
            brand=brand,
            model=model,
            grade=stated,
            price=float(rng.integers(low, high)),
            weight=weight,
            kind=kind,
            sku=f"SN{index:07d}",
        )
    if kind == "organic":
        name, (low, high) = ORGANIC_FOODS[index % len(ORGANIC_FOODS)]
        certifier, issued = rng.integers(100, 999), rng.integers(21, 26)
        code = f"{certifier}{issued}{rng.integers(10**11, 10**12)}"
        if rng.random() < 0.9:
            registries["organic"].append(
                {
                    "code": code,
                    "product": name,
                    "holder": f"农场{index}",
                    "valid_until": (
                        DEMO_AS_OF + timedelta(days=int(rng.integers(30, 700)))
                    ).isoformat(),
                }
            )
        merchant_id, merchant_name = GROCERY_MERCHANTS[index % len(GROCERY_MERCHANTS)]
        return _product(
            f"{name} 批次{index}",
            5499,
            merchant_id,
            merchant_name,
            certificate_id=code,
            price=float(rng.integers(low, high)),
            weight=weight,
            kind=kind,
            sku=f"OG{index:07d}",
        )
    if kind == "green_food":
        name, (low, high) = GREEN_FOODS[index % len(GREEN_FOODS)]
        year = int(rng.choice([21, 23, 24, 25]))
        code = f"GF{rng.integers(110000, 659999)}{year}{rng.integers(1000, 9999)}"
        registries["green_food"].append(
            {
                "code": code,
                "product": name,
                "holder": f"合作社{index}",
                "valid_from": f"20{year}-01-01",
                "valid_until": f"20{year + 3}-01-01",
            }
        )
        merchant_id, merchant_name = GROCERY_MERCHANTS[index % len(GROCERY_MERCHANTS)]
        return _product(
            f"{name} 规格{index}",
            5411,
            merchant_id,
            merchant_name,
            certificate_id=code,
            price=float(rng.integers(low, high)),
            weight=weight,
            kind=kind,
            sku=f"GF{index:07d}",
        )
    if kind == "second_hand":
        merchant_id, merchant_name, mcc, _ = SECOND_HAND[index % len(SECOND_HAND)]
        name, item_kind, (low, high) = SECOND_HAND_ITEMS[index % len(SECOND_HAND_ITEMS)]
        return _product(
            f"{name} #{index}",
            mcc,
            merchant_id,
            merchant_name,
            price=float(rng.integers(low, high)),
            weight=weight,
            kind=kind,
            item_kind=item_kind,
            sku=f"SH{index:07d}",
        )
    name, mcc, (low, high) = ORDINARY[index % len(ORDINARY)]
    variant = index // len(ORDINARY)
    return _product(
        f"{name} 款式{variant}" if variant else name,
        mcc,
        "m-taobao",
        "淘宝",
        price=float(rng.integers(low, high)),
        weight=weight,
        kind=kind,
        sku=f"TB{index:07d}",
    )


def generate_purchases(
    rows: int, products: int = 2_000, seed: int = 7, as_of: date = DEMO_AS_OF
) -> tuple[pa.Table, dict[str, list[dict[str, Any]]]]:
    """Return `rows` purchases (typed Arrow columns) and the registries for them."""
    rng = np.random.default_rng(seed)
    catalogue, registries = build_catalogue(rng, products)
    weights = np.array([item["weight"] for item in catalogue])
    picks = rng.choice(len(catalogue), size=rows, p=weights / weights.sum())
    users = max(rows // 8, 10)
    user_index = (rng.zipf(1.6, size=rows) - 1) % users
    province_weights = np.array([p[2] for p in PROVINCES], dtype=float)
    user_province = rng.choice(
        len(PROVINCES), size=users, p=province_weights / province_weights.sum()
    )
    province = user_province[user_index]

    def column(key: str) -> np.ndarray:
        return np.array([item[key] for item in catalogue], dtype=object)[picks]

    kinds = column("kind")
    price = np.array([item["price"] for item in catalogue])[picks]
    quantity = np.where(
        np.isin(kinds, ["organic", "green_food", "ordinary"]),
        rng.integers(1, 4, size=rows),
        1,
    )
    amount = np.round(price * quantity, 2)
    installments = np.ones(rows, dtype=np.int32)
    installments[kinds == "appliance"] = rng.choice(
        [3, 6, 12, 24], size=(kinds == "appliance").sum()
    )
    installments[kinds == "vehicle"] = rng.choice(
        [36, 60], size=(kinds == "vehicle").sum()
    )
    large = (amount >= 500) & (installments == 1)
    installments[large] = rng.choice([1, 3, 6, 12], size=large.sum())
    seconds = rng.integers(0, 90 * 86400, size=rows)
    start = datetime.combine(as_of, datetime.min.time()) - timedelta(days=90)
    occurred = np.datetime64(start) + seconds.astype("timedelta64[s]")
    region_codes = np.array([p[0] for p in PROVINCES], dtype=object)[province]
    region_names = np.array([p[1] for p in PROVINCES], dtype=object)[province]
    form = rng.random(rows)
    no_region = np.full(rows, None, dtype=object)
    region = np.where(
        form < 0.7, region_codes, np.where(form < 0.9, region_names, no_region)
    )
    grades = column("grade")
    table = pa.table(
        {
            "purchase_id": pa.array([f"P{seed:02d}{i:09d}" for i in range(rows)]),
            "occurred_at": pa.array(occurred.astype("datetime64[us]")),
            "user_id": pa.array([f"u{u:07d}" for u in user_index]),
            "merchant_id": pa.array(column("merchant_id"), pa.string()),
            "merchant_name": pa.array(column("merchant_name"), pa.string()),
            "mcc": pa.array(column("mcc").astype(np.int32)),
            "title": pa.array(column("title"), pa.string()),
            "sku": pa.array(column("sku"), pa.string()),
            "brand": pa.array(column("brand"), pa.string()),
            "model_number": pa.array(column("model"), pa.string()),
            "quantity": pa.array(quantity.astype(np.float64)),
            "amount": pa.array(amount),
            "currency": pa.array(np.full(rows, "CNY", dtype=object), pa.string()),
            "region": pa.array(region, pa.string()),
            "installments": pa.array(installments),
            "energy_label_grade": pa.array(
                [None if g is None else int(g) for g in grades], pa.int32()
            ),
            "certificate_id": pa.array(column("certificate_id"), pa.string()),
        }
    )
    return table, registries


def add_returns_and_faults(table: pa.Table, seed: int) -> pa.Table:
    """Return the purchases as text columns with returns and faulty rows added."""
    rng = np.random.default_rng(seed + 1)
    rows = table.to_pylist()
    text_rows = [{key: _text(value) for key, value in row.items()} for row in rows]
    for row in text_rows:
        row["returns_purchase_id"] = ""
    returnable = [
        i
        for i, row in enumerate(rows)
        if row["installments"] > 1 and row["mcc"] in (5722, 5651, 5732)
    ]
    for index in rng.choice(
        returnable, size=min(len(returnable), max(len(rows) // 60, 1)), replace=False
    ):
        original = rows[int(index)]
        refund = dict(text_rows[int(index)])
        refund.update(
            purchase_id=f"R{original['purchase_id']}",
            occurred_at=_text(
                original["occurred_at"] + timedelta(days=int(rng.integers(1, 7)))
            ),
            quantity=_text(-original["quantity"]),
            returns_purchase_id=original["purchase_id"],
        )
        text_rows.append(refund)
    faults = (
        ("amount", "12,3o"),
        ("occurred_at", "2026-13-45"),
        ("currency", "RMB"),
        ("purchase_id", ""),
        ("quantity", "0"),
        ("energy_label_grade", "7"),
        ("installments", "-3"),
        ("amount", "-15.00"),
    )
    for number in range(max(len(rows) // 250, len(faults))):
        column, value = faults[number % len(faults)]
        faulty = dict(text_rows[int(rng.integers(0, len(rows)))])
        faulty["purchase_id"] = f"F{number:07d}"
        faulty[column] = value
        text_rows.append(faulty)
    for _ in range(max(len(rows) // 1000, 2)):
        text_rows.append(
            dict(text_rows[int(rng.integers(0, len(rows)))])
        )  # a duplicate id
    order = rng.permutation(len(text_rows))
    return pa.Table.from_pylist([text_rows[i] for i in order])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_registries(
    folder: Path, registries: dict[str, list[dict[str, Any]]], as_of: date
) -> Path:
    """Write registry CSV files and snapshot.yaml into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = {
        "energy_label": [
            "brand",
            "model_number",
            "appliance_type",
            "grade",
            "valid_until",
        ],
        "organic": ["code", "product", "holder", "valid_until"],
        "green_food": ["code", "product", "holder", "valid_from", "valid_until"],
        "green_product": ["code", "product", "holder", "scope", "valid_until"],
        "environmental_label": ["code", "product", "holder", "valid_until"],
        "nev_models": [
            "brand",
            "model",
            "vehicle_kind",
            "catalogue_batch",
            "catalogue_date",
        ],
        "merchants": ["merchant_id", "merchant_name", "category", "kind", "source"],
    }
    snapshot: dict[str, Any] = {"registries": {}}
    for name, header in columns.items():
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=header)
            writer.writeheader()
            writer.writerows(registries.get(name, []))
        snapshot["registries"][name] = {
            "file": path.name,
            "snapshot_date": (as_of - timedelta(days=5)).isoformat(),
            "source": "greenloop demo sample (synthetic)",
            "max_age_days": 90,
        }
    (folder / "snapshot.yaml").write_text(
        yaml.safe_dump(snapshot, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return folder


def write_demo(
    folder: Path, rows: int = 20_000, seed: int = 7, products: int = 2_000
) -> DemoSample:
    """Write the demo purchases (CSV with returns and faults) and registries."""
    folder.mkdir(parents=True, exist_ok=True)
    table, registries = generate_purchases(rows, products=products, seed=seed)
    with_faults = add_returns_and_faults(table, seed)
    purchases = folder / "purchases.csv"
    pa_csv.write_csv(with_faults, purchases)
    registry_dir = write_registries(folder / "registries", registries, DEMO_AS_OF)
    return DemoSample(purchases, registry_dir, DEMO_AS_OF)


def write_benchmark_input(path: Path, rows: int, products: int, seed: int = 11) -> Path:
    """Write a large typed Parquet input for benchmarks, with its registries."""
    table, registries = generate_purchases(rows, products=products, seed=seed)
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
    write_registries(path.parent / "registries", registries, DEMO_AS_OF)
    return path
