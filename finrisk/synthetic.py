"""Deterministic, vectorised generator of synthetic Indian bank transactions.

``generate(out_dir, customers, days, seed, start)`` writes, exactly as a bank export would:

* ``customers.csv`` - one row per customer (KYC identifiers, home location, account, VPA).
* ``merchants.csv`` - merchants and ATMs (ATMs are the rows with mcc 6011).
* ``transactions/txns_YYYY-MM-DD.csv`` - one file per IST calendar day; ``txn_time`` is the
  Asia/Kolkata wall clock without a zone, ``amount_inr`` is rupees with two decimals.
* ``labels.csv`` - only the fraudulent transactions, with when they were reported.

Everything is drawn from one ``numpy`` seed, rows are built as integer codes with ``numpy``
(no Python loop over rows) and turned into text with Polars, one day at a time while writing.
The same arguments always give byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

__all__ = [
    "CUSTOMER_COLUMNS",
    "FRAUD_TYPES",
    "GenerateSummary",
    "LABEL_COLUMNS",
    "MERCHANT_COLUMNS",
    "TRANSACTION_COLUMNS",
    "generate",
]

CUSTOMER_COLUMNS = (
    "customer_id", "full_name", "mobile", "email", "pan", "aadhaar", "date_of_birth", "kyc_level",
    "segment", "home_city", "home_state", "home_pincode", "account_number", "ifsc", "vpa",
    "onboarded_on",
)
MERCHANT_COLUMNS = ("merchant_id", "merchant_name", "mcc", "city", "state", "pincode", "vpa", "terminal_id")
TRANSACTION_COLUMNS = (
    "txn_ref", "txn_time", "customer_id", "account_number", "customer_name", "mobile", "payer_vpa",
    "counterparty_id", "counterparty_type", "mcc", "channel", "direction", "amount_inr", "status",
    "device_id", "ip_address", "city", "state", "pincode", "latitude", "longitude", "ifsc",
)
LABEL_COLUMNS = ("txn_ref", "label", "fraud_type", "reported_at")
FRAUD_TYPES = ("account_takeover", "mule_network", "card_testing", "compromised_merchant", "velocity_burst")


@dataclass(frozen=True)
class GenerateSummary:
    out_dir: Path
    customers: int
    merchants: int
    transactions: int
    fraud_transactions: int
    fraud_by_type: dict[str, int]
    start: date
    end: date  # inclusive


# --------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------

# name, state, pincode prefix (first 3 digits), lat, lon, population weight, region, short code
_CITIES = [
    ("Mumbai", "Maharashtra", 400, 19.0760, 72.8777, 12.0, "W", "bom"),
    ("Delhi", "Delhi", 110, 28.6139, 77.2090, 12.0, "N", "del"),
    ("Bengaluru", "Karnataka", 560, 12.9716, 77.5946, 10.0, "S", "blr"),
    ("Hyderabad", "Telangana", 500, 17.3850, 78.4867, 8.0, "S", "hyd"),
    ("Chennai", "Tamil Nadu", 600, 13.0827, 80.2707, 8.0, "S", "maa"),
    ("Kolkata", "West Bengal", 700, 22.5726, 88.3639, 8.0, "E", "ccu"),
    ("Pune", "Maharashtra", 411, 18.5204, 73.8567, 6.0, "W", "pnq"),
    ("Ahmedabad", "Gujarat", 380, 23.0225, 72.5714, 6.0, "W", "amd"),
    ("Jaipur", "Rajasthan", 302, 26.9124, 75.7873, 4.0, "N", "jai"),
    ("Lucknow", "Uttar Pradesh", 226, 26.8467, 80.9462, 4.0, "N", "lko"),
    ("Kochi", "Kerala", 682, 9.9312, 76.2673, 2.5, "S", "cok"),
    ("Indore", "Madhya Pradesh", 452, 22.7196, 75.8577, 3.0, "W", "idr"),
    ("Bhopal", "Madhya Pradesh", 462, 23.2599, 77.4126, 2.5, "N", "bho"),
    ("Patna", "Bihar", 800, 25.5941, 85.1376, 3.0, "E", "pat"),
    ("Guwahati", "Assam", 781, 26.1445, 91.7362, 2.0, "E", "gau"),
    ("Chandigarh", "Chandigarh", 160, 30.7333, 76.7794, 2.0, "N", "ixc"),
    ("Surat", "Gujarat", 395, 21.1702, 72.8311, 4.0, "W", "stv"),
    ("Nagpur", "Maharashtra", 440, 21.1458, 79.0882, 2.5, "W", "nag"),
    ("Visakhapatnam", "Andhra Pradesh", 530, 17.6868, 83.2185, 2.0, "S", "vtz"),
    ("Coimbatore", "Tamil Nadu", 641, 11.0168, 76.9558, 2.0, "S", "cjb"),
    ("Vadodara", "Gujarat", 390, 22.3072, 73.1812, 2.0, "W", "bdq"),
    ("Ludhiana", "Punjab", 141, 30.9010, 75.8573, 2.0, "N", "luh"),
    ("Kanpur", "Uttar Pradesh", 208, 26.4499, 80.3319, 2.5, "N", "knu"),
    ("Bhubaneswar", "Odisha", 751, 20.2961, 85.8245, 2.0, "E", "bbi"),
    ("Thiruvananthapuram", "Kerala", 695, 8.5241, 76.9366, 1.5, "S", "trv"),
    ("Mysuru", "Karnataka", 570, 12.2958, 76.6394, 1.5, "S", "mys"),
    ("Nashik", "Maharashtra", 422, 19.9975, 73.7898, 1.5, "W", "isk"),
    ("Ranchi", "Jharkhand", 834, 23.3441, 85.3096, 1.5, "E", "ixr"),
    ("Dehradun", "Uttarakhand", 248, 30.3165, 78.0322, 1.2, "N", "ded"),
    ("Raipur", "Chhattisgarh", 492, 21.2514, 81.6296, 1.5, "E", "rpr"),
    ("Varanasi", "Uttar Pradesh", 221, 25.3176, 82.9739, 1.5, "N", "vns"),
    ("Madurai", "Tamil Nadu", 625, 9.9252, 78.1198, 1.5, "S", "ixm"),
    ("Gurugram", "Haryana", 122, 28.4595, 77.0266, 3.0, "N", "ggn"),
    ("Noida", "Uttar Pradesh", 201, 28.5355, 77.3910, 2.5, "N", "noi"),
]
_NCITY = len(_CITIES)
_CITY_NAME = [c[0] for c in _CITIES]
_CITY_STATE = [c[1] for c in _CITIES]
_CITY_PIN = np.array([c[2] for c in _CITIES], dtype=np.int64)
_CITY_LAT = np.array([c[3] for c in _CITIES])
_CITY_LON = np.array([c[4] for c in _CITIES])
_CITY_W = np.array([c[5] for c in _CITIES])
_CITY_W = _CITY_W / _CITY_W.sum()
_REGIONS = ("N", "W", "S", "E")
_CITY_REGION = np.array([_REGIONS.index(c[6]) for c in _CITIES])
_CITY_CODE = [c[7] for c in _CITIES]
_METROS = np.array([_CITY_NAME.index(c) for c in
                    ("Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai", "Pune", "Gurugram", "Noida")])
_CITY_RENT = np.where(np.isin(np.arange(_NCITY), _METROS), 1.6, 1.0) * np.where(
    np.arange(_NCITY) == _CITY_NAME.index("Kolkata"), 1.2, 1.0)

_MALE = ("Rahul", "Amit", "Rohit", "Vikram", "Arjun", "Suresh", "Ramesh", "Rajesh", "Sanjay", "Anil",
         "Vijay", "Manoj", "Deepak", "Karthik", "Pradeep", "Aditya", "Nikhil", "Saurabh", "Abhishek",
         "Ravi", "Arun", "Kiran", "Harish", "Ganesh", "Imran", "Farhan", "Gurpreet", "Sandeep",
         "Venkatesh", "Naveen", "Ajay", "Mohit", "Varun", "Siddharth", "Akash", "Yash", "Aniket",
         "Rakesh", "Dinesh", "Prakash")
_FEMALE = ("Priya", "Anjali", "Neha", "Pooja", "Sneha", "Kavya", "Divya", "Lakshmi", "Meera",
           "Aishwarya", "Swati", "Shweta", "Nisha", "Ritu", "Sunita", "Anita", "Kavita", "Rekha", "Deepa",
           "Shalini", "Ananya", "Ishita", "Riya", "Tanvi", "Sana", "Ayesha", "Fatima", "Simran",
           "Harleen", "Bhavna", "Megha", "Pallavi", "Shruti", "Nandini", "Radha", "Geeta", "Usha",
           "Jyoti", "Madhuri", "Preeti")
_FIRST = _MALE + _FEMALE
_SURNAMES = {
    "N": ("Sharma", "Verma", "Gupta", "Singh", "Yadav", "Mishra", "Pandey", "Tiwari", "Chauhan",
          "Agarwal", "Kapoor", "Malhotra", "Saxena", "Srivastava", "Chaudhary", "Bansal"),
    "W": ("Patel", "Shah", "Desai", "Joshi", "Kulkarni", "Deshmukh", "Patil", "Pawar", "Jadhav",
          "Mehta", "Gaikwad", "Shinde", "Bhatt", "Trivedi", "Parikh", "Thakkar"),
    "S": ("Reddy", "Rao", "Naidu", "Iyer", "Iyengar", "Nair", "Menon", "Pillai", "Krishnan",
          "Subramanian", "Gowda", "Shetty", "Hegde", "Murthy", "Raman", "Varghese"),
    "E": ("Banerjee", "Chatterjee", "Mukherjee", "Das", "Ghosh", "Bose", "Sen", "Dutta", "Roy",
          "Mahato", "Sahu", "Mohanty", "Prasad", "Sinha", "Barua", "Kumar"),
    "*": ("Khan", "Shaikh", "Ansari", "Qureshi", "Siddiqui", "Gill", "Sandhu", "Fernandes", "Thomas",
          "George", "Joseph", "Jain", "Chopra", "Bhatia"),
}
_LAST = sum((_SURNAMES[k] for k in ("N", "W", "S", "E", "*")), ())
_LAST_OFFSET = {k: sum(len(_SURNAMES[j]) for j in ("N", "W", "S", "E", "*")[:i])
                for i, k in enumerate(("N", "W", "S", "E", "*"))}

# bank code (IFSC prefix), short name, account-number length, weight
_BANKS = [
    ("SBIN", "SBI", 11, 0.25), ("HDFC", "HDFC Bank", 14, 0.15), ("ICIC", "ICICI Bank", 12, 0.13),
    ("UTIB", "Axis Bank", 15, 0.09), ("KKBK", "Kotak Bank", 14, 0.06), ("PUNB", "PNB", 16, 0.08),
    ("BARB", "Bank of Baroda", 14, 0.08), ("CNRB", "Canara Bank", 13, 0.06),
    ("UBIN", "Union Bank", 15, 0.05), ("IDFB", "IDFC FIRST Bank", 11, 0.05),
]
_BANK_W = np.array([b[3] for b in _BANKS]) / sum(b[3] for b in _BANKS)
_BANK_LEN = np.array([b[2] for b in _BANKS])

_CUST_HANDLES = ("okhdfcbank", "okicici", "oksbi", "okaxis", "ybl", "paytm", "ibl", "axl")
_CUST_HANDLE_W = np.array([0.12, 0.10, 0.12, 0.08, 0.30, 0.15, 0.08, 0.05])
_EXT_HANDLES = ("apl", "yapl", "waicici", "fam", "superyes")  # never used by our customers
_MERCH_HANDLES = ("ybl", "paytm", "okbizaxis", "hdfcbank", "icici", "pingpay")
_EMAIL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.co.in", "rediffmail.com", "outlook.com")

# Indian ISP /16 blocks (customers) and hosting / VPN blocks (fraudsters)
_ISP16 = np.array([(49, 36), (49, 37), (49, 43), (49, 44), (49, 47), (106, 193), (106, 200), (106, 206),
                   (106, 51), (117, 96), (117, 99), (117, 230), (157, 32), (157, 35), (157, 48),
                   (223, 176), (223, 181), (223, 187), (27, 97), (122, 161), (103, 21), (182, 70)])
_BAD16 = np.array([(45, 14), (45, 133), (185, 220), (185, 107), (104, 244), (5, 188), (139, 59),
                   (193, 36), (91, 219), (194, 26)])

_SEGMENTS = ("salaried", "self_employed", "student", "retired")
_SEG_P = np.array([0.50, 0.22, 0.14, 0.14])

# Transaction categories. ATM is handled as its own counterparty type.
# key, mcc, online, median rupees, sigma, min, max, p(paise), p(round to 100), merchant share,
# weights by segment (salaried, self_employed, student, retired), weekend multiplier, name nouns
_CATS = [
    ("grocery", "5411", 0, 450, 0.80, 20, 15000, 0.35, 0.02, 16, (30, 30, 20, 32), 1.1,
     ("Kirana Store", "Supermarket", "Provision Store", "Fresh Mart")),
    ("restaurant", "5812", 0, 650, 0.70, 60, 20000, 0.10, 0.05, 12, (10, 10, 10, 6), 1.6,
     ("Restaurant", "Bhojanalaya", "Family Dhaba", "Veg Restaurant")),
    ("fast_food", "5814", 0, 220, 0.60, 30, 3000, 0.05, 0.00, 7, (12, 10, 22, 5), 1.3,
     ("Chaat Corner", "Cafe", "Tiffin Centre", "Bakery")),
    ("fuel", "5541", 0, 1100, 0.50, 100, 6000, 0.35, 0.55, 5, (8, 10, 4, 4), 0.9,
     ("Fuel Station", "Petroleum", "Filling Station")),
    ("transport", "4111", 0, 60, 0.70, 10, 1500, 0.00, 0.00, 2, (5, 3, 8, 3), 0.6,
     ("Metro Rail", "City Bus Depot", "Transport Corp")),
    ("taxi", "4121", 1, 240, 0.60, 40, 3000, 0.30, 0.00, 2, (5, 4, 6, 2), 1.0,
     ("Cabs", "Rides", "Auto Connect")),
    ("pharmacy", "5912", 0, 380, 0.80, 20, 12000, 0.40, 0.00, 5, (3, 3, 2, 10), 0.9,
     ("Medicals", "Pharmacy", "Chemists")),
    ("hospital", "8062", 0, 2500, 1.10, 200, 300000, 0.20, 0.40, 2, (1, 1, 0.5, 3), 0.7,
     ("Hospital", "Nursing Home", "Multispeciality Clinic")),
    ("clothing", "5691", 0, 1600, 0.70, 150, 40000, 0.10, 0.30, 5, (4, 4, 5, 2), 1.8,
     ("Garments", "Fashions", "Cloth Emporium", "Sarees")),
    ("department_store", "5311", 0, 1800, 0.80, 100, 60000, 0.30, 0.10, 4, (4, 4, 3, 3), 1.7,
     ("Department Store", "Mega Mart", "Bazaar")),
    ("electronics", "5732", 0, 9000, 1.10, 300, 400000, 0.05, 0.60, 3, (1.5, 2, 1.5, 0.8), 1.5,
     ("Electronics", "Mobile Gallery", "Digital World")),
    ("jewellery", "5944", 0, 35000, 1.00, 2000, 900000, 0.20, 0.50, 2, (0.4, 0.8, 0.1, 0.5), 1.5,
     ("Jewellers", "Gold Palace", "Ornaments")),
    ("misc_retail", "5999", 0, 450, 0.90, 20, 30000, 0.20, 0.10, 6, (4, 5, 4, 3), 1.2,
     ("General Store", "Gift Centre", "Stationers", "Hardware")),
    ("ecommerce", "5399", 1, 900, 0.90, 50, 200000, 0.20, 0.00, 4, (8, 6, 10, 3), 1.3,
     ("Online Retail", "Marketplace", "eStore")),
    ("streaming", "4899", 1, 199, 0.50, 49, 1500, 0.00, 0.00, 1, (1, 1, 2, 0.5), 1.0,
     ("Stream", "Play", "OTT")),
    ("gaming", "7995", 1, 300, 1.00, 10, 50000, 0.00, 0.50, 1, (0.5, 0.8, 1.5, 0.1), 1.3,
     ("Fantasy Sports", "Rummy", "Games")),
    ("travel", "4722", 1, 4500, 0.90, 300, 150000, 0.30, 0.10, 1, (1, 1, 0.6, 0.6), 1.2,
     ("Travels", "Trips", "Holidays")),
    ("telecom", "4814", 1, 299, 0.50, 10, 3000, 0.00, 0.00, 1, (1, 1, 2, 1), 1.0,
     ("Telecom", "Mobile Recharge")),
    ("utilities", "4900", 1, 1400, 0.60, 50, 30000, 0.90, 0.00, 2, (0.5, 0.5, 0.2, 0.8), 1.0,
     ("Power Distribution Ltd", "Electricity Board")),
    ("education", "8220", 0, 12000, 0.90, 500, 300000, 0.00, 0.80, 1, (0.3, 0.2, 0.5, 0.05), 0.5,
     ("Public School", "Coaching Institute", "College")),
    ("atm", "6011", 0, 0, 0, 0, 0, 0, 0, 14, (0, 0, 0, 0), 1.0, ("ATM",)),
]
_NCAT = len(_CATS)
_CAT = {c[0]: i for i, c in enumerate(_CATS)}
_ATM = _CAT["atm"]
_CAT_MCC = [c[1] for c in _CATS]
_CAT_ONLINE = np.array([c[2] for c in _CATS], dtype=bool)
_CAT_MED = np.array([c[3] for c in _CATS], dtype=np.float64)
_CAT_SIG = np.array([c[4] for c in _CATS], dtype=np.float64)
_CAT_LO = np.array([c[5] for c in _CATS], dtype=np.float64)
_CAT_HI = np.array([c[6] for c in _CATS], dtype=np.float64)
_CAT_PPAISE = np.array([c[7] for c in _CATS])
_CAT_PR100 = np.array([c[8] for c in _CATS])
_CAT_MSHARE = np.array([c[9] for c in _CATS], dtype=np.float64)
_CAT_SEGW = np.array([c[10] for c in _CATS], dtype=np.float64)  # (ncat, 4)
_CAT_WKND = np.array([c[11] for c in _CATS], dtype=np.float64)
_PHYSICAL = ~_CAT_ONLINE & (np.arange(_NCAT) != _ATM)
_TELECOM_PLANS = np.array([155, 179, 199, 239, 249, 299, 349, 399, 479, 589, 666, 719, 839, 859, 2999])
_TELECOM_PLAN_W = np.array([3, 3, 6, 6, 5, 10, 8, 6, 5, 3, 4, 4, 3, 2, 1], dtype=np.float64)
_STREAM_PLANS = np.array([149, 199, 299, 499, 649, 899])
_STREAM_PLAN_W = np.array([4, 5, 3, 3, 2, 1], dtype=np.float64)
# category weight tables, [segment, weekend] -> cdf over categories
_CAT_CDF = np.zeros((4, 2, _NCAT))
for _s in range(4):
    for _w in range(2):
        _v = _CAT_SEGW[:, _s] * (_CAT_WKND if _w else 1.0)
        _CAT_CDF[_s, _w] = np.cumsum(_v) / _v.sum()

_MERCH_PREFIX = ("Sri Balaji", "Shree Ganesh", "New India", "Royal", "City", "Green Leaf", "Metro",
                 "Om Sai", "Annapurna", "Lakshmi", "Krishna", "Janata", "Apna", "Star", "Sagar",
                 "Maruti", "Jai Hind", "Sunrise", "Kaveri", "Ganga", "Delight", "Navrang", "Shanti",
                 "Modern", "Classic", "Vinayak", "Saraswati", "Bharat", "Golden", "Evergreen")
_ONLINE_PREFIX = ("ShopKart", "BuyNest", "CartMandi", "QuickBasket", "DesiBazaar", "ZipCart", "Yatrika",
                  "PlayAdda", "CineStream", "TeleRecharge", "SwiftRide", "KhelBaazi", "GharSe",
                  "PayBill", "Safar")
_ACQUIRERS = ("HD", "IC", "SB", "AX", "KT", "YB", "PY", "BB")

# Channels, counterparty kinds etc. are small integer codes until the files are written.
_CHANNELS = ("UPI", "IMPS", "NEFT", "RTGS", "CARD_POS", "CARD_ECOM", "ATM", "NETBANKING", "WALLET")
UPI, IMPS, NEFT, RTGS, CARD_POS, CARD_ECOM, ATM_CH, NETBANKING, WALLET = range(9)
_DEVICE_CHANNELS = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1], dtype=bool)  # a customer device/IP is seen
_CTYPES = ("MERCHANT", "P2P", "ATM", "SALARY")
T_MERCHANT, T_P2P, T_ATM, T_SALARY = range(4)
K_MERCHANT, K_CUSTOMER, K_EXTERNAL, K_TERMINAL, K_EMPLOYER = range(5)
DEBIT, CREDIT = 0, 1
_UNSET = -1  # status decided at the end
_OWN_DEVICE = -2  # device/IP: the customer's own, if the channel shows one
_PAYER_SELF, _PAYER_COUNTERPARTY, _PAYER_NONE = 0, 1, 2
_FRAUD_DELAY_DAYS = np.array([0, 1.5, 10.0, 2.0, 6.0, 3.0])  # median report delay by fraud code

_HOUR_W = np.array([0.6, 0.3, 0.15, 0.1, 0.1, 0.3, 1.2, 2.5, 4.0, 6.0, 7.0, 6.5, 5.5, 5.5, 4.5, 4.5,
                    5.0, 5.5, 7.0, 8.0, 8.5, 7.5, 4.5, 2.0])
_HOUR_CDF = np.cumsum(_HOUR_W) / _HOUR_W.sum()
DAY = 86_400


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------

def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """n distinct random integers in [low, high), in random order."""
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        draw = rng.integers(low, high, size=int(n * 1.05) + 16, dtype=np.int64)
        both = np.concatenate([out, draw])
        _, first = np.unique(both, return_index=True)
        out = both[np.sort(first)]
    return out[:n]


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """0-based rank of each element among the elements with the same key."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = sk[1:] != sk[:-1]
    grp_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - grp_start
    return rank


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: group index and position within the group of each element."""
    counts = counts.astype(np.int64)
    grp = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(counts.sum()) - starts[grp]
    return grp, pos


def _group_cumsum(values: np.ndarray, grp: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (elements laid out group by group)."""
    cs = np.cumsum(values)
    starts = np.cumsum(counts) - counts
    base = cs[starts] - values[starts] if len(values) else cs
    return cs - base[grp]


def _chars(mat: np.ndarray) -> pl.Series:
    """(n, w) uint8 matrix of ASCII codes -> Series of n strings of width w."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    w = mat.shape[1]
    return pl.Series(mat.view(f"S{w}").ravel().astype(f"U{w}"))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII matrix of zero-padded decimal digits."""
    v = values.astype(np.int64)
    pw = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (v[:, None] // pw[None, :] % 10 + 48).astype(np.uint8)


def _hex(values: np.ndarray, width: int) -> np.ndarray:
    v = values.astype(np.uint64)
    shifts = (np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4))
    nib = ((v[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.intp)
    return np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nib]


def _const(ch: str, n: int) -> np.ndarray:
    return np.full((n, len(ch)), np.frombuffer(ch.encode(), dtype=np.uint8), dtype=np.uint8)


_VD = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
                [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
                [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
                [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]])
_VP = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
                [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
                [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]])
_VINV = np.array([0, 4, 3, 2, 1, 5, 6, 7, 8, 9])


def _verhoeff_digit(base: np.ndarray, ndigits: int) -> np.ndarray:
    """Verhoeff check digit (as used by Aadhaar) for each number in base."""
    c = np.zeros(len(base), dtype=np.intp)
    x = base.astype(np.int64).copy()
    for i in range(ndigits):
        c = _VD[c, _VP[(i + 1) % 8, x % 10]]
        x //= 10
    return _VINV[c]


def _pick_other(rng: np.random.Generator, k: int, n: int, exclude: np.ndarray) -> np.ndarray:
    """Random integer in [0, n) different from exclude (n >= 2)."""
    r = rng.integers(0, n - 1, size=k)
    return np.where(r >= exclude, r + 1, r)


def _other_city(rng: np.random.Generator, avoid1: np.ndarray, avoid2: np.ndarray | None = None) -> np.ndarray:
    """A random city (population weighted) that is neither avoid1 nor avoid2."""
    k = len(avoid1)
    a2 = avoid1 if avoid2 is None else avoid2
    c = rng.choice(_NCITY, size=k, p=_CITY_W)
    for _ in range(4):  # redraw the clashes a few times
        c = np.where((c == avoid1) | (c == a2), rng.choice(_NCITY, size=k, p=_CITY_W), c)
    for _ in range(2):  # then step past whatever still clashes
        c = np.where((c == avoid1) | (c == a2), (c + 1) % _NCITY, c)
    return c


def _lognormal(rng: np.random.Generator, median, sigma, size) -> np.ndarray:
    return np.asarray(median) * np.exp(rng.standard_normal(size) * sigma)


def _p2p_channel(rng: np.random.Generator, paise: np.ndarray) -> np.ndarray:
    """UPI up to 1 lakh, IMPS/NEFT above, RTGS only from 2 lakh."""
    u = rng.random(len(paise))
    small = np.where(u < 0.90, UPI, np.where(u < 0.97, IMPS, NEFT))
    mid = np.where(u < 0.6, IMPS, NEFT)
    big = np.where(u < 0.5, RTGS, np.where(u < 0.8, NEFT, IMPS))
    return np.where(paise <= 100_000_00, small, np.where(paise < 200_000_00, mid, big)).astype(np.int8)


def _round_p2p(rng: np.random.Generator, rupees: np.ndarray) -> np.ndarray:
    u = rng.random(len(rupees))
    r100 = np.round(rupees / 100) * 100
    r10 = np.round(rupees / 10) * 10
    out = np.where((u < 0.45) & (rupees >= 200), r100, np.where(u < 0.75, r10, np.round(rupees)))
    return (np.maximum(out, 1) * 100).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Customers, merchants, lookups
# --------------------------------------------------------------------------------------------

@dataclass
class _Customers:
    n: int
    seg: np.ndarray
    home: np.ndarray
    home_pin: np.ndarray
    mule: np.ndarray
    rate: np.ndarray
    wealth: np.ndarray
    has_card: np.ndarray
    card_pref: np.ndarray
    peak_m: np.ndarray
    peak_e: np.ndarray
    p_morning: np.ndarray
    n_dev: np.ndarray
    ip24: np.ndarray
    ip_last: np.ndarray
    table: pl.DataFrame  # the customers.csv frame
    # filled later
    fav: np.ndarray | None = None
    n_fav: np.ndarray | None = None
    contacts: np.ndarray | None = None
    n_contacts: np.ndarray | None = None
    by_city_order: np.ndarray | None = None
    by_city_start: np.ndarray | None = None
    by_city_count: np.ndarray | None = None


def _make_customers(rng: np.random.Generator, n: int, start: date) -> _Customers:
    seg = rng.choice(4, size=n, p=_SEG_P)
    home = rng.choice(_NCITY, size=n, p=_CITY_W)
    # money mules: a few customers, more often students and recently onboarded, MIN KYC
    n_mule = min(max(6, round(n * 0.004)), n // 5)
    mule_w = np.where(seg == 2, 4.0, 1.0)
    mule_idx = rng.choice(n, size=n_mule, replace=False, p=mule_w / mule_w.sum())
    mule = np.zeros(n, dtype=bool)
    mule[mule_idx] = True

    female = rng.random(n) < 0.48
    first = np.where(female, len(_MALE) + rng.integers(0, len(_FEMALE), n), rng.integers(0, len(_MALE), n))
    region = _CITY_REGION[home]
    regional = rng.random(n) < 0.72
    reg_off = np.array([_LAST_OFFSET[r] for r in _REGIONS])
    reg_len = np.array([len(_SURNAMES[r]) for r in _REGIONS])
    last = np.where(regional, reg_off[region] + (rng.random(n) * reg_len[region]).astype(np.int64),
                    rng.integers(0, len(_LAST), n))
    rank = _rank_within(first * 1000 + last)
    vpa_num = rank * 100 + 10 + rng.integers(0, 90, n)
    mail_num = rank * 100 + 10 + rng.integers(0, 90, n)

    mobile = _unique_ints(rng, n, 6_000_000_000, 10_000_000_000)
    aad_base = _unique_ints(rng, n, 20_000_000_000, 100_000_000_000)
    aadhaar = aad_base * 10 + _verhoeff_digit(aad_base, 11)
    # PAN: AAA + P (individual) + surname initial + 4 digits + check letter
    pan_rand = _unique_ints(rng, n, 0, 26 ** 3 * 9999 * 26)
    l3, rest = np.divmod(pan_rand, 9999 * 26)
    d4, lastl = np.divmod(rest, 26)
    initial = np.array([s[0] for s in _LAST]).view(np.uint32).astype(np.uint8)[last]
    pan_mat = np.concatenate([
        np.stack([l3 // 676 % 26, l3 // 26 % 26, l3 % 26], axis=1).astype(np.uint8) + 65,
        _const("P", n), initial[:, None], _digits(d4 + 1, 4), (lastl.astype(np.uint8) + 65)[:, None]], axis=1)

    age_lo = np.array([23, 25, 18, 60])[seg]
    age_hi = np.array([58, 66, 25, 82])[seg]
    age_days = ((age_lo + rng.random(n) * (age_hi - age_lo)) * 365.25).astype(np.int64)
    start64 = np.datetime64(start, "D")
    dob = start64 - age_days
    adult = dob + np.timedelta64(int(18 * 365.25) + 1, "D")
    earliest = np.maximum(adult, np.datetime64("2012-04-01"))
    latest = start64 - np.timedelta64(7, "D")
    span = np.maximum((latest - earliest).astype(np.int64), 1)
    onboard = earliest + (rng.random(n) * span).astype(np.int64)
    mule_onb = start64 - rng.integers(5, 150, n)
    onboard = np.where(mule, np.maximum(mule_onb, adult), onboard)
    kyc_min = rng.random(n) < np.where(mule, 0.5, np.array([0.08, 0.12, 0.30, 0.05])[seg])

    bank = rng.choice(len(_BANKS), size=n, p=_BANK_W)
    acct = np.zeros(n, dtype=np.int64)
    for length in np.unique(_BANK_LEN):
        sel = np.flatnonzero(_BANK_LEN[bank] == length)
        if len(sel):
            acct[sel] = _unique_ints(rng, len(sel), 10 ** (int(length) - 1), 10 ** int(length))
    branch_code = rng.integers(1, 1_000_000, size=(len(_BANKS), _NCITY, 4))
    branch = branch_code[bank, home, rng.integers(0, 4, n)]
    bank_codes = np.array([b[0] for b in _BANKS])
    ifsc_mat = np.concatenate([
        np.frombuffer("".join(bank_codes).encode(), dtype=np.uint8).reshape(-1, 4)[bank],
        _const("0", n), _digits(branch, 6)], axis=1)

    home_pin = _CITY_PIN[home] * 1000 + rng.integers(1, 100, n)
    handle = rng.choice(len(_CUST_HANDLES), size=n, p=_CUST_HANDLE_W)
    mobile_vpa = rng.random(n) < 0.35
    domain = rng.integers(0, len(_EMAIL_DOMAINS), n)
    mail_dot = rng.random(n) < 0.6

    first_s = pl.Series(_FIRST).gather(first)
    last_s = pl.Series(_LAST).gather(last)
    df = pl.DataFrame({
        "cid": np.arange(1, n + 1), "first": first_s, "last": last_s, "mobile": mobile,
        "vpa_num": vpa_num, "mail_num": mail_num, "mobile_vpa": mobile_vpa, "mail_dot": mail_dot,
        "handle": pl.Series(_CUST_HANDLES).gather(handle), "domain": pl.Series(_EMAIL_DOMAINS).gather(domain),
        "pan": _chars(pan_mat), "aadhaar": aadhaar, "dob": dob, "kyc": np.where(kyc_min, "MIN", "FULL"),
        "segment": pl.Series(_SEGMENTS).gather(seg), "home_city": pl.Series(_CITY_NAME).gather(home),
        "home_state": pl.Series(_CITY_STATE).gather(home), "home_pincode": home_pin, "acct": acct,
        "ifsc": _chars(ifsc_mat), "onboarded_on": onboard,
    })
    fl = pl.col("first").str.to_lowercase()
    ll = pl.col("last").str.to_lowercase()
    table = df.select(
        customer_id=pl.concat_str([pl.lit("C"), pl.col("cid").cast(pl.String).str.zfill(7)]),
        full_name=pl.concat_str([pl.col("first"), pl.col("last")], separator=" "),
        mobile=pl.col("mobile").cast(pl.String),
        email=pl.when(pl.col("mail_dot"))
        .then(pl.concat_str([fl, pl.lit("."), ll, pl.col("mail_num").cast(pl.String), pl.lit("@"), pl.col("domain")]))
        .otherwise(pl.concat_str([fl, ll, pl.col("mail_num").cast(pl.String), pl.lit("@"), pl.col("domain")])),
        pan=pl.col("pan"),
        aadhaar=pl.col("aadhaar").cast(pl.String),
        date_of_birth=pl.col("dob").cast(pl.Date),
        kyc_level=pl.col("kyc"),
        segment=pl.col("segment"),
        home_city=pl.col("home_city"),
        home_state=pl.col("home_state"),
        home_pincode=pl.col("home_pincode").cast(pl.String),
        account_number=pl.col("acct").cast(pl.String),
        ifsc=pl.col("ifsc"),
        vpa=pl.when(pl.col("mobile_vpa"))
        .then(pl.concat_str([pl.col("mobile").cast(pl.String), pl.lit("@"), pl.col("handle")]))
        .otherwise(pl.concat_str([fl, pl.lit("."), ll, pl.col("vpa_num").cast(pl.String), pl.lit("@"),
                                  pl.col("handle")])),
        onboarded_on=pl.col("onboarded_on").cast(pl.Date),
    )

    seg_rate = np.array([1.0, 1.15, 0.85, 0.6])[seg]
    rate = 1.0 * seg_rate * np.exp(rng.standard_normal(n) * 0.65 - 0.65 ** 2 / 2)
    rate = np.where(mule, rate * 0.6, rate)
    wealth = np.array([1.0, 1.25, 0.45, 0.8])[seg] * np.exp(rng.standard_normal(n) * 0.45)
    has_card = rng.random(n) < np.array([0.85, 0.85, 0.5, 0.7])[seg]
    card_pref = rng.beta(2.0, 4.0, n)
    peak_m = np.clip(rng.normal(9.8, 1.0, n), 7, 12.5)
    peak_e = np.clip(rng.normal(19.8, 1.2, n), 17, 22.5)
    p_morning = np.where(seg == 3, 0.6, 0.35) + rng.normal(0, 0.08, n)
    n_dev = 1 + (rng.random(n) < 0.35)
    isp = rng.integers(0, len(_ISP16), n)
    ip24 = (_ISP16[isp, 0].astype(np.int64) << 24) | (_ISP16[isp, 1].astype(np.int64) << 16) | (
        rng.integers(0, 256, n).astype(np.int64) << 8)
    ip_last = rng.integers(2, 250, size=(n, 3))
    return _Customers(n=n, seg=seg, home=home, home_pin=home_pin, mule=mule, rate=rate, wealth=wealth,
                      has_card=has_card, card_pref=card_pref, peak_m=peak_m, peak_e=peak_e,
                      p_morning=p_morning, n_dev=n_dev, ip24=ip24, ip_last=ip_last, table=table)


@dataclass
class _Merchants:
    m: int
    cat: np.ndarray
    city: np.ndarray
    pin: np.ndarray
    table: pl.DataFrame
    # pick index
    order: np.ndarray
    start: np.ndarray
    count: np.ndarray
    cat_order: np.ndarray
    cat_start: np.ndarray
    cat_count: np.ndarray
    phys_order: np.ndarray
    phys_start: np.ndarray
    phys_count: np.ndarray

    def pick(self, cat: np.ndarray, city: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A random merchant of category cat in city (online: anywhere), with fallbacks."""
        g = cat * _NCITY + city
        cnt = self.count[g]
        res = self.order[np.minimum(self.start[g] + (u * cnt).astype(np.int64), len(self.order) - 1)]
        need = np.flatnonzero(_CAT_ONLINE[cat] | (cnt == 0))
        if len(need):
            cat, city, u = cat[need], city[need], u[need]
            pcnt = self.phys_count[city]
            phys = self.phys_order[np.minimum(self.phys_start[city] + (u * pcnt).astype(np.int64),
                                              max(len(self.phys_order) - 1, 0))]
            ccnt = self.cat_count[cat]
            anyw = self.cat_order[np.minimum(self.cat_start[cat] + (u * ccnt).astype(np.int64),
                                             len(self.cat_order) - 1)]
            res[need] = np.where(_PHYSICAL[cat] & (pcnt > 0), phys, anyw)
        return res


def _make_merchants(rng: np.random.Generator, m: int, home: np.ndarray) -> _Merchants:
    raw = _CAT_MSHARE / _CAT_MSHARE.sum() * m
    cnt = np.maximum(1, np.floor(raw)).astype(np.int64)
    diff = m - cnt.sum()
    if diff > 0:
        cnt[np.argsort(-(raw - np.floor(raw)), kind="stable")[:diff]] += 1
    while cnt.sum() > m:  # only when m is tiny; a handful of iterations
        cnt[np.argmax(cnt)] -= 1
    cat = np.repeat(np.arange(_NCAT), cnt)
    cust_city = np.bincount(home, minlength=_NCITY) + 0.5
    city = rng.choice(_NCITY, size=m, p=cust_city / cust_city.sum())
    online = _CAT_ONLINE[cat]
    city = np.where(online, _METROS[rng.integers(0, len(_METROS), m)], city)
    pin = _CITY_PIN[city] * 1000 + rng.integers(1, 100, m)

    pref = rng.integers(0, len(_MERCH_PREFIX), m)
    opref = rng.integers(0, len(_ONLINE_PREFIX), m)
    noun_idx = rng.integers(0, 8, m)
    nouns = [n for c in _CATS for n in c[12]]
    noun_off = np.cumsum([0] + [len(c[12]) for c in _CATS])[:-1]
    noun_len = np.array([len(c[12]) for c in _CATS])
    noun = noun_off[cat] + noun_idx % noun_len[cat]
    bank = rng.choice(len(_BANKS), size=m, p=_BANK_W)
    tid_num = _unique_ints(rng, m, 100_000, 1_000_000)
    acq = rng.integers(0, len(_ACQUIRERS), m)
    handle = rng.integers(0, len(_MERCH_HANDLES), m)
    is_atm = cat == _ATM
    is_util = cat == _CAT["utilities"]
    slug = [p.lower().replace(" ", "") for p in _MERCH_PREFIX]
    oslug = [p.lower() for p in _ONLINE_PREFIX]
    nslug = [n.split()[0].lower() for n in nouns]
    df = pl.DataFrame({
        "num": np.arange(1, m + 1), "online": online, "atm": is_atm, "util": is_util,
        "pref": pl.Series(_MERCH_PREFIX).gather(pref), "opref": pl.Series(_ONLINE_PREFIX).gather(opref),
        "slug": pl.Series(slug).gather(pref), "oslug": pl.Series(oslug).gather(opref),
        "noun": pl.Series(nouns).gather(noun), "nslug": pl.Series(nslug).gather(noun),
        "bank": pl.Series([b[1] for b in _BANKS]).gather(bank), "mcc": pl.Series(_CAT_MCC).gather(cat),
        "city": pl.Series(_CITY_NAME).gather(city), "state": pl.Series(_CITY_STATE).gather(city),
        "code": pl.Series(_CITY_CODE).gather(city), "pin": pin,
        "tid": pl.Series([a for a in _ACQUIRERS]).gather(acq), "tnum": tid_num,
        "handle": pl.Series(_MERCH_HANDLES).gather(handle),
    })
    num = pl.col("num").cast(pl.String).str.zfill(4)
    table = df.select(
        merchant_id=pl.concat_str([pl.lit("M"), pl.col("num").cast(pl.String).str.zfill(6)]),
        merchant_name=pl.when(pl.col("atm")).then(pl.concat_str([pl.col("bank"), pl.lit("ATM"), pl.col("city")],
                                                                separator=" "))
        .when(pl.col("util")).then(pl.concat_str([pl.col("state"), pl.col("noun")], separator=" "))
        .when(pl.col("online")).then(pl.concat_str([pl.col("opref"), pl.col("noun")], separator=" "))
        .otherwise(pl.concat_str([pl.col("pref"), pl.col("noun")], separator=" ")),
        mcc=pl.col("mcc"),
        city=pl.col("city"),
        state=pl.col("state"),
        pincode=pl.col("pin").cast(pl.String),
        vpa=pl.when(pl.col("atm")).then(pl.lit(None, dtype=pl.String))
        .when(pl.col("online")).then(pl.concat_str([pl.col("oslug"), pl.lit("."), pl.col("nslug"), num,
                                                    pl.lit("@"), pl.col("handle")]))
        .otherwise(pl.concat_str([pl.col("slug"), pl.col("nslug"), pl.lit("."), pl.col("code"), num,
                                  pl.lit("@"), pl.col("handle")])),
        terminal_id=pl.concat_str([pl.col("tid"), pl.col("tnum").cast(pl.String)]),
    )

    key = cat * _NCITY + city
    order = np.argsort(key, kind="stable")
    sk = key[order]
    groups = np.arange(_NCAT * _NCITY)
    start = np.searchsorted(sk, groups)
    count = np.searchsorted(sk, groups, side="right") - start
    cat_order = np.argsort(cat, kind="stable")
    cat_start = np.searchsorted(cat[cat_order], np.arange(_NCAT))
    cat_count = np.searchsorted(cat[cat_order], np.arange(_NCAT), side="right") - cat_start
    phys_ids = np.flatnonzero(_PHYSICAL[cat])
    phys_order = phys_ids[np.argsort(city[phys_ids], kind="stable")]
    pc = city[phys_order]
    phys_start = np.searchsorted(pc, np.arange(_NCITY))
    phys_count = np.searchsorted(pc, np.arange(_NCITY), side="right") - phys_start
    return _Merchants(m=m, cat=cat, city=city, pin=pin, table=table, order=order, start=start, count=count,
                      cat_order=cat_order, cat_start=cat_start, cat_count=cat_count, phys_order=phys_order,
                      phys_start=phys_start, phys_count=phys_count)


def _customer_links(rng: np.random.Generator, c: _Customers, mer: _Merchants) -> None:
    """Favourite merchants and P2P contacts of every customer."""
    n = c.n
    order = np.argsort(c.home, kind="stable")
    hs = c.home[order]
    c.by_city_order = order
    c.by_city_start = np.searchsorted(hs, np.arange(_NCITY))
    c.by_city_count = np.searchsorted(hs, np.arange(_NCITY), side="right") - c.by_city_start

    slots = 15
    c.n_fav = rng.integers(5, slots + 1, n)
    fav_cat = _sample_cat(rng, np.repeat(c.seg, slots), np.zeros(n * slots, dtype=np.int64))
    home = np.repeat(c.home, slots)
    c.fav = mer.pick(fav_cat, home, rng.random(n * slots)).reshape(n, slots).astype(np.int32)

    kslots = 5
    c.n_contacts = rng.integers(2, kslots + 1, n)
    self_idx = np.repeat(np.arange(n)[:, None], kslots, axis=1).ravel()
    city = np.repeat(c.home[:, None], kslots, axis=1).ravel()
    same = rng.random(n * kslots) < 0.8
    c.contacts = np.where(same, _random_in_city(rng, c, city, self_idx),
                          _pick_other(rng, n * kslots, n, self_idx)).reshape(n, kslots).astype(np.int32)


def _random_in_city(rng: np.random.Generator, c: _Customers, city: np.ndarray, self_idx: np.ndarray) -> np.ndarray:
    k = len(city)
    cnt = c.by_city_count[city]
    st = c.by_city_start[city]
    pos = (rng.random(k) * np.maximum(cnt, 1)).astype(np.int64)
    pick = c.by_city_order[np.minimum(st + pos, c.n - 1)]
    alt = c.by_city_order[np.minimum(st + (pos + 1) % np.maximum(cnt, 1), c.n - 1)]
    pick = np.where(pick == self_idx, alt, pick)
    bad = (cnt < 2) | (pick == self_idx)
    return np.where(bad, _pick_other(rng, k, c.n, self_idx), pick)


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------

_COLS = {"t": np.int32, "cust": np.int32, "ctype": np.int8, "cpk": np.int8, "cpi": np.int32,
         "chan": np.int8, "dirn": np.int8, "paise": np.int32, "status": np.int8, "dev": np.int32,
         "ip": np.uint32, "city": np.int16, "fraud": np.int8, "payer": np.int8}
_DEFAULTS = {"dirn": DEBIT, "status": _UNSET, "dev": _OWN_DEVICE, "ip": 0, "fraud": 0, "payer": _PAYER_SELF}


class _Rows:
    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in _COLS}

    def add(self, **cols) -> None:
        n = len(cols["t"])
        for k, dt in _COLS.items():
            v = cols.get(k, _DEFAULTS.get(k))
            if v is None:
                raise KeyError(k)
            a = np.asarray(v)
            self.parts[k].append(np.full(n, a, dtype=dt) if a.ndim == 0 else a.astype(dt, copy=False))

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


class _Devices:
    """Device id table: customers' first devices, second devices, then fraudsters' devices."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng = rng
        self.n = n
        self.values = [rng.integers(1, 2 ** 48, size=2 * n, dtype=np.int64)]
        self.size = 2 * n

    def new(self, k: int) -> np.ndarray:
        self.values.append(self.rng.integers(1, 2 ** 48, size=k, dtype=np.int64))
        idx = np.arange(self.size, self.size + k)
        self.size += k
        return idx

    def table(self) -> pl.Series:
        v = np.concatenate(self.values)
        return _chars(np.concatenate([_const("D", len(v)), _hex(v, 12)], axis=1))


def _bad_ip(rng: np.random.Generator, k: int) -> np.ndarray:
    b = _BAD16[rng.integers(0, len(_BAD16), k)]
    return (b[:, 0].astype(np.int64) << 24) | (b[:, 1].astype(np.int64) << 16) | (
        rng.integers(0, 256, k).astype(np.int64) << 8) | rng.integers(1, 255, k).astype(np.int64)


def _sample_cat(rng: np.random.Generator, seg: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Spending category by segment and weekday/weekend (never ATM)."""
    key = seg.astype(np.int64) * 2 + weekend
    # table k occupies [k, k + 1) in the flattened cdf, so one search serves all 8 tables
    flat = (_CAT_CDF.reshape(8, _NCAT) + np.arange(8)[:, None]).ravel()
    out = np.searchsorted(flat, rng.random(len(seg)) + key, side="right") - key * _NCAT
    return np.clip(out, 0, _NCAT - 2)


def _tod(rng: np.random.Generator, c: _Customers, cust: np.ndarray, weekend: np.ndarray | None = None) -> np.ndarray:
    """Seconds after midnight following the daily rhythm and the customer's own peaks."""
    k = len(cust)
    f32 = np.float32
    base = rng.random(k, dtype=f32) < 0.45
    h_base = np.searchsorted(_HOUR_CDF.astype(f32), rng.random(k, dtype=f32), side="right") + rng.random(k, dtype=f32)
    morning = rng.random(k, dtype=f32) < c.p_morning[cust]
    centre = np.where(morning, c.peak_m[cust], c.peak_e[cust]).astype(f32)
    if weekend is not None:
        centre += (weekend & morning).astype(f32)  # lie in an hour on weekend mornings
    h = np.where(base, h_base, centre + rng.standard_normal(k, dtype=f32) * f32(1.1)) % f32(24)
    return np.minimum((h * f32(3600)).astype(np.int64), DAY - 1)


def _merchant_amount(rng: np.random.Generator, cat: np.ndarray, wealth: np.ndarray) -> np.ndarray:
    k = len(cat)
    amt = _lognormal(rng, _CAT_MED[cat] * wealth ** 0.6, _CAT_SIG[cat], k)
    amt = np.clip(amt, _CAT_LO[cat], _CAT_HI[cat])
    u = rng.random(k)
    pp = _CAT_PPAISE[cat]
    paise = np.where(u < pp, np.round(amt * 100),
                     np.where(u < pp + _CAT_PR100[cat], np.maximum(1, np.round(amt / 100)) * 10000,
                              np.round(amt) * 100)).astype(np.int64)
    tel = cat == _CAT["telecom"]
    paise = np.where(tel, _TELECOM_PLANS[rng.choice(len(_TELECOM_PLANS), k, p=_TELECOM_PLAN_W / _TELECOM_PLAN_W.sum())] * 100, paise)
    st = cat == _CAT["streaming"]
    paise = np.where(st, _STREAM_PLANS[rng.choice(len(_STREAM_PLANS), k, p=_STREAM_PLAN_W / _STREAM_PLAN_W.sum())] * 100, paise)
    return paise


def _merchant_channel(rng: np.random.Generator, c: _Customers, cust: np.ndarray, cat: np.ndarray,
                      paise: np.ndarray) -> np.ndarray:
    k = len(cust)
    u = rng.random(k)
    pc = c.card_pref[cust] * c.has_card[cust]
    online = _CAT_ONLINE[cat]
    phys = np.where(u < pc, CARD_POS, np.where(u < pc + 0.04, WALLET, UPI))
    onl = np.where(u < pc * 0.9, CARD_ECOM, np.where(u < pc * 0.9 + 0.10, NETBANKING,
                                                     np.where(u < pc * 0.9 + 0.17, WALLET, UPI)))
    ch = np.where(online, onl, phys)
    ch = np.where((ch == WALLET) & (paise > 10_000_00), UPI, ch)
    # large bills at hospitals / schools often go by NEFT
    u2 = rng.random(k)
    big_bill = ((cat == _CAT["hospital"]) | (cat == _CAT["education"])) & (paise > 20_000_00) & (u2 < 0.4)
    ch = np.where(big_bill, NEFT, ch)
    # above the UPI limit: card if they have one, else a bank transfer
    over = (paise > 100_000_00) & ((ch == UPI) | (ch == WALLET))
    has = c.has_card[cust]
    transfer = np.where(paise >= 200_000_00, RTGS, NEFT)
    ch = np.where(over, np.where(has, np.where(online, CARD_ECOM, CARD_POS), np.where(online, NETBANKING, transfer)), ch)
    return ch.astype(np.int8)


def _atm_amount(rng: np.random.Generator, wealth: np.ndarray) -> np.ndarray:
    k = len(wealth)
    amt = _lognormal(rng, 2500 * wealth ** 0.5, 0.6, k)
    step = np.where(rng.random(k) < 0.3, 100, 500)
    amt = np.clip(np.round(amt / step) * step, 100, 25000)
    return (amt * 100).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Normal behaviour
# --------------------------------------------------------------------------------------------

def _calendar(start: date, days: int):
    d = np.arange(days)
    dates = np.datetime64(start, "D") + d
    weekday = (start.weekday() + d) % 7
    dom = np.array([(start + timedelta(days=int(i))).day for i in range(days)])  # loop over days only
    return dates, weekday, dom


def _normal_activity(rng: np.random.Generator, c: _Customers, mer: _Merchants, rows: _Rows, days: int,
                     weekday: np.ndarray, dom: np.ndarray, trip: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    n = c.n
    wk = np.array([0.95, 0.95, 0.95, 0.95, 1.0, 1.15, 1.05])[weekday]
    monthf = np.where(dom <= 7, 1.12, np.where(dom >= 25, 0.9, 1.0))
    lam = c.rate[:, None] * (wk * monthf)[None, :]
    counts = rng.poisson(lam).ravel()
    del lam
    cust = np.repeat(np.repeat(np.arange(n, dtype=np.int32), days), counts)
    day = np.repeat(np.tile(np.arange(days, dtype=np.int32), n), counts)
    del counts
    k = len(cust)
    weekend = weekday[day] >= 5
    seg = c.seg[cust]
    t = day.astype(np.int64) * DAY + _tod(rng, c, cust, weekend)
    trip_start, trip_end, trip_city = trip
    on_trip = (day >= trip_start[cust]) & (day < trip_end[cust])
    cur = np.where(on_trip, trip_city[cust], c.home[cust]).astype(np.int64)

    f32 = np.float32
    u = rng.random(k, dtype=f32)
    p_p2p = np.array([0.16, 0.17, 0.20, 0.12])[seg]
    p_atm = np.array([0.05, 0.07, 0.03, 0.09])[seg]
    ctype = np.where(u < p_p2p, T_P2P, np.where(u < p_p2p + p_atm, T_ATM, T_MERCHANT)).astype(np.int8)

    # --- merchant payments
    mi = np.flatnonzero(ctype == T_MERCHANT)
    mc = cust[mi]
    p_fav = np.where(on_trip[mi], 0.1, np.where(weekend[mi], 0.55, 0.75))
    use_fav = rng.random(len(mi), dtype=f32) < p_fav
    slot = np.minimum((c.n_fav[mc] * rng.random(len(mi), dtype=f32) ** f32(1.6)).astype(np.int64), c.n_fav[mc] - 1)
    fav_m = c.fav[mc, slot]
    rcat = _sample_cat(rng, seg[mi], weekend[mi].astype(np.int64))
    rnd_m = mer.pick(rcat, cur[mi], rng.random(len(mi), dtype=f32))
    merch = np.where(use_fav, fav_m, rnd_m)
    mcat = mer.cat[merch]
    m_paise = _merchant_amount(rng, mcat, c.wealth[mc])
    m_chan = _merchant_channel(rng, c, mc, mcat, m_paise)
    m_city = np.where(_CAT_ONLINE[mcat], cur[mi], mer.city[merch])
    rows.add(t=t[mi], cust=mc, ctype=T_MERCHANT, cpk=K_MERCHANT, cpi=merch, chan=m_chan, paise=m_paise,
             city=m_city)
    del mi, mc, use_fav, slot, fav_m, rcat, rnd_m, merch, mcat, m_paise, m_chan, m_city

    # --- person to person
    pi = np.flatnonzero(ctype == T_P2P)
    pc = cust[pi]
    kp = len(pi)
    use_contact = rng.random(kp) < 0.75
    cslot = (rng.random(kp) * c.n_contacts[pc]).astype(np.int64)
    payee = np.where(use_contact, c.contacts[pc, cslot], _random_in_city(rng, c, cur[pi], pc))
    p_paise = _round_p2p(rng, np.clip(_lognormal(rng, 700 * c.wealth[pc] ** 0.5, 1.1, kp), 1, 500_000))
    rows.add(t=t[pi], cust=pc, ctype=T_P2P, cpk=K_CUSTOMER, cpi=payee, chan=_p2p_channel(rng, p_paise),
             paise=p_paise, city=cur[pi])
    del pi, pc, use_contact, cslot, payee, p_paise

    # --- ATM cash
    ai = np.flatnonzero(ctype == T_ATM)
    ac = cust[ai]
    atm = mer.pick(np.full(len(ai), _ATM), cur[ai], rng.random(len(ai)))
    rows.add(t=t[ai], cust=ac, ctype=T_ATM, cpk=K_TERMINAL, cpi=atm, chan=ATM_CH,
             paise=_atm_amount(rng, c.wealth[ac]), city=mer.city[atm])


def _month_starts(start: date, end: date) -> list[date]:
    out = []
    y, m = start.year, start.month
    while date(y, m, 1) <= end + timedelta(days=1):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    out.append(date(y, m, 1))
    return out


def _scheduled(rng: np.random.Generator, c: _Customers, mer: _Merchants, rows: _Rows, start: date,
               days: int, n_emp: int, n_pension: int) -> None:
    n = c.n
    end = start + timedelta(days=days - 1)
    months = _month_starts(start, end)
    ids = np.arange(n)
    # salary / pension
    salaried = (c.seg == 0) | ((c.seg == 1) & (rng.random(n) < 0.15))
    pension = (c.seg == 3) & (rng.random(n) < 0.85)
    employer = np.where(salaried, rng.integers(0, n_emp, n), n_emp + rng.integers(0, n_pension, n))
    emp_type = rng.random(n_emp + n_pension) < 0.3  # True: last working day, False: on the 1st
    emp_type[n_emp:] = False
    emp_time = rng.integers(int(5.5 * 3600), 11 * 3600, n_emp + n_pension)
    salary = np.round(_lognormal(rng, 42000, 0.5, n) * c.wealth ** 0.5 / 100) * 100
    salary = np.where(salaried, np.clip(salary, 12000, 600000), np.clip(salary * 0.5, 6000, 150000))
    paid = salaried | pension
    # rent
    renter = rng.random(n) < np.array([0.55, 0.45, 0.5, 0.08])[c.seg]
    landlord = _random_in_city(rng, c, c.home, ids)
    rent = np.round(_lognormal(rng, 12000, 0.45, n) * _CITY_RENT[c.home] * c.wealth ** 0.4 / 500) * 500
    rent = np.where(c.seg == 2, np.round(rent * 0.5 / 500) * 500, rent)
    rent = np.maximum(rent, 2500)
    rent_dom = rng.integers(1, 6, n)
    # electricity
    has_util = rng.random(n) < 0.7
    util_m = mer.pick(np.full(n, _CAT["utilities"]), c.home, rng.random(n))
    util_base = _lognormal(rng, 1400, 0.5, n) * c.wealth ** 0.5
    util_dom = rng.integers(5, 26, n)
    # streaming subscription
    has_stream = rng.random(n) < 0.35
    stream_m = mer.pick(np.full(n, _CAT["streaming"]), c.home, rng.random(n))
    stream_amt = _STREAM_PLANS[rng.choice(len(_STREAM_PLANS), n, p=_STREAM_PLAN_W / _STREAM_PLAN_W.sum())] * 100
    stream_dom = rng.integers(1, 29, n)

    for i, ms in enumerate(months):  # a handful of months
        prev_last = ms - timedelta(days=1)
        lwd = prev_last
        while lwd.weekday() >= 5:
            lwd -= timedelta(days=1)
        d_first = (ms - start).days
        d_lwd = (lwd - start).days
        sd = np.where(emp_type[employer], d_lwd, d_first)
        sel = np.flatnonzero(paid & (sd >= 0) & (sd < days))
        if len(sel):
            t = sd[sel].astype(np.int64) * DAY + emp_time[employer[sel]] + rng.integers(0, 900, len(sel))
            rows.add(t=t, cust=sel, ctype=T_SALARY, cpk=K_EMPLOYER, cpi=employer[sel], chan=NEFT, dirn=CREDIT,
                     paise=(salary[sel] * 100).astype(np.int64), status=0, dev=-1, ip=0, city=c.home[sel],
                     payer=_PAYER_NONE)
        if i == len(months) - 1 and ms > end:
            continue
        # rent to the landlord, a few days into the month
        rd = d_first + rent_dom - 1
        sel = np.flatnonzero(renter & (rd >= 0) & (rd < days))
        if len(sel):
            p = (rent[sel] * 100).astype(np.int64)
            u = rng.random(len(sel))
            ch = np.where(u < 0.85, UPI, np.where(u < 0.95, IMPS, NEFT))
            ch = np.where(p > 100_000_00, NEFT, ch)
            rows.add(t=rd[sel].astype(np.int64) * DAY + _tod(rng, c, sel), cust=sel, ctype=T_P2P, cpk=K_CUSTOMER,
                     cpi=landlord[sel], chan=ch, paise=p, city=c.home[sel])
        # electricity bill
        ud = d_first + util_dom - 1
        sel = np.flatnonzero(has_util & (ud >= 0) & (ud < days))
        if len(sel):
            p = np.round(util_base[sel] * np.exp(rng.standard_normal(len(sel)) * 0.25) * 100).astype(np.int64)
            u = rng.random(len(sel))
            ch = np.where(u < 0.7, UPI, np.where(u < 0.85, NETBANKING, np.where(c.has_card[sel] & (u < 0.95),
                                                                                  CARD_ECOM, WALLET)))
            rows.add(t=ud[sel].astype(np.int64) * DAY + _tod(rng, c, sel), cust=sel, ctype=T_MERCHANT,
                     cpk=K_MERCHANT, cpi=util_m[sel], chan=ch, paise=p, city=c.home[sel])
        # streaming auto-debit, early morning
        sd2 = d_first + stream_dom - 1
        sel = np.flatnonzero(has_stream & (sd2 >= 0) & (sd2 < days))
        if len(sel):
            ch = np.where(c.has_card[sel], CARD_ECOM, UPI)
            rows.add(t=sd2[sel].astype(np.int64) * DAY + rng.integers(6 * 3600, 9 * 3600, len(sel)), cust=sel,
                     ctype=T_MERCHANT, cpk=K_MERCHANT, cpi=stream_m[sel], chan=ch, paise=stream_amt[sel],
                     city=c.home[sel])

    # prepaid mobile recharge on a 28-day cycle, same plan each time
    prepaid = rng.random(n) < 0.8
    tel_m = mer.pick(np.full(n, _CAT["telecom"]), c.home, rng.random(n))
    plan = _TELECOM_PLANS[rng.choice(len(_TELECOM_PLANS), n, p=_TELECOM_PLAN_W / _TELECOM_PLAN_W.sum())] * 100
    phase = rng.integers(0, 28, n)
    for k in range((days + 27) // 28):  # a handful of cycles
        d = phase + 28 * k
        sel = np.flatnonzero(prepaid & (d < days))
        if len(sel):
            u = rng.random(len(sel))
            ch = np.where(u < 0.75, UPI, np.where(u < 0.9, WALLET, np.where(c.has_card[sel], CARD_ECOM, UPI)))
            rows.add(t=d[sel].astype(np.int64) * DAY + _tod(rng, c, sel), cust=sel, ctype=T_MERCHANT,
                     cpk=K_MERCHANT, cpi=tel_m[sel], chan=ch, paise=plan[sel], city=c.home[sel])


# --------------------------------------------------------------------------------------------
# Fraud typologies (fraud codes 1..5 follow FRAUD_TYPES)
# --------------------------------------------------------------------------------------------

def _victims(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    return rng.choice(pool, size=k, replace=k > len(pool))


def _account_takeover(rng, c: _Customers, rows: _Rows, dev: _Devices, days: int, k: int, ext: list) -> None:
    pool = np.flatnonzero(~c.mule)
    v = _victims(rng, pool, k)
    day = rng.integers(0, days, k)
    t0 = day * DAY + rng.integers(0, 5 * 3600, k)  # 00:00 - 05:00
    ntx = rng.integers(3, 9, k)
    npay = rng.integers(1, 4, k)
    ext_base = sum(len(e) for e in ext)
    ext.append(np.arange(ext_base, ext_base + npay.sum()))
    pay_off = ext_base + np.cumsum(npay) - npay
    device = dev.new(k)
    city = _other_city(rng, c.home[v])
    ip = _bad_ip(rng, k)
    grp, pos = _expand(ntx)
    gaps = np.where(pos == 0, 0, rng.integers(20, 400, len(grp)))
    t = t0[grp] + _group_cumsum(gaps, grp, ntx)
    amt = np.clip(_lognormal(rng, 35000, 0.6, len(grp)), 5000, 195000)
    u = rng.random(len(grp))
    amt = np.where(u < 0.3, np.round(amt / 1000) * 1000 - 1, np.round(amt / 1000) * 1000)
    chan = np.where((amt > 100000) | (rng.random(len(grp)) < 0.2), IMPS, UPI)
    status = (rng.random(len(grp)) < 0.08).astype(np.int8)
    rows.add(t=t, cust=v[grp], ctype=T_P2P, cpk=K_EXTERNAL, cpi=pay_off[grp] + pos % npay[grp], chan=chan,
             paise=(amt * 100).astype(np.int64), status=status, dev=device[grp], ip=ip[grp], city=city[grp], fraud=1)


def _mule_network(rng, c: _Customers, mer: _Merchants, rows: _Rows, dev: _Devices, days: int, k: int) -> None:
    mules = np.flatnonzero(c.mule)
    pool = np.flatnonzero(~c.mule)
    day = rng.integers(0, max(days - 1, 1), k)
    nv = rng.integers(3, 9, k)
    hops = rng.integers(1, 4, k)  # further mules after the first
    chain = np.argsort(rng.random((k, len(mules))), axis=1)[:, :4]
    chain = mules[chain]  # (k, 4) distinct mules per network
    herder_dev = dev.new(k)
    herder_ip = _bad_ip(rng, k)
    # victims pay the first mule during the day
    grp, _ = _expand(nv)
    victim = _victims(rng, pool, len(grp))
    tv = day[grp] * DAY + rng.integers(9 * 3600, 21 * 3600, len(grp))
    amt = np.clip(_lognormal(rng, 12000, 0.7, len(grp)), 1000, 95000)
    paise = (np.round(amt / 100) * 10000).astype(np.int64)
    chan = np.where(rng.random(len(grp)) < 0.85, UPI, IMPS)
    rows.add(t=tv, cust=victim, ctype=T_P2P, cpk=K_CUSTOMER, cpi=chain[grp, 0], chan=chan, paise=paise,
             status=0, city=c.home[victim], fraud=2)
    held = np.bincount(grp, weights=paise, minlength=k)
    last_t = np.zeros(k, dtype=np.int64)
    np.maximum.at(last_t, grp, tv)
    # forwarding along the chain
    for h in range(3):  # at most three hops
        sel = np.flatnonzero(hops > h)
        if not len(sel):
            break
        delay = 120 + rng.exponential(45 * 60, len(sel)).astype(np.int64)
        last_t[sel] += delay
        fwd = (np.floor(held[sel] * rng.uniform(0.90, 0.98, len(sel)) / 10000) * 10000).astype(np.int64)
        held[sel] = fwd
        payer = chain[sel, h]
        rows.add(t=last_t[sel], cust=payer, ctype=T_P2P, cpk=K_CUSTOMER, cpi=chain[sel, h + 1],
                 chan=_p2p_channel(rng, fwd), paise=fwd, status=0, dev=herder_dev[sel], ip=herder_ip[sel],
                 city=c.home[payer], fraud=2)
    # the last mule cashes out at ATMs, several withdrawals a few minutes apart
    last = chain[np.arange(k), hops]
    natm = np.clip(np.ceil(held / 20000_00), 1, 5).astype(np.int64)
    each = np.clip(np.floor(held / natm / 500_00) * 500_00, 500_00, 20000_00).astype(np.int64)
    away = rng.random(k) < 0.3
    atm_city = np.where(away, _other_city(rng, c.home[last]), c.home[last])
    atm = mer.pick(np.full(k, _ATM), atm_city, rng.random(k))
    start_t = last_t + 300 + rng.exponential(3600, k).astype(np.int64)
    grp, pos = _expand(natm)
    t = start_t[grp] + _group_cumsum(np.where(pos == 0, 0, rng.integers(60, 300, len(grp))), grp, natm)
    rows.add(t=t, cust=last[grp], ctype=T_ATM, cpk=K_TERMINAL, cpi=atm[grp], chan=ATM_CH, paise=each[grp],
             status=0, dev=-1, ip=0, city=mer.city[atm[grp]], fraud=2)


def _card_testing(rng, c: _Customers, mer: _Merchants, rows: _Rows, dev: _Devices, days: int, k: int) -> None:
    pool = np.flatnonzero(~c.mule & c.has_card)
    v = _victims(rng, pool, k)
    day = rng.integers(0, days, k)
    night = rng.random(k) < 0.5
    t0 = day * DAY + np.where(night, rng.integers(0, 6 * 3600, k), rng.integers(6 * 3600, DAY - 3 * 3600, k))
    device = dev.new(k)
    ip = _bad_ip(rng, k)
    city = _other_city(rng, c.home[v])
    cats = np.array([_CAT["ecommerce"], _CAT["streaming"], _CAT["gaming"]])
    tm = mer.pick(cats[rng.integers(0, 3, (k, 3))].ravel(), np.zeros(3 * k, dtype=np.int64),
                  rng.random(3 * k)).reshape(k, 3)
    ntm = rng.integers(1, 4, k)
    ntiny = rng.integers(8, 31, k)
    grp, pos = _expand(ntiny)
    t = t0[grp] + _group_cumsum(np.where(pos == 0, 0, rng.integers(5, 60, len(grp))), grp, ntiny)
    rows.add(t=t, cust=v[grp], ctype=T_MERCHANT, cpk=K_MERCHANT, cpi=tm[grp, pos % ntm[grp]], chan=CARD_ECOM,
             paise=rng.integers(1, 11, len(grp)) * 100, status=(rng.random(len(grp)) < 0.45).astype(np.int8),
             dev=device[grp], ip=ip[grp], city=city[grp], fraud=3)
    end_t = np.zeros(k, dtype=np.int64)
    np.maximum.at(end_t, grp, t)
    nbig = rng.integers(1, 3, k)
    grp, pos = _expand(nbig)
    big_cat = np.where(rng.random(len(grp)) < 0.6, _CAT["ecommerce"], _CAT["travel"])
    bm = mer.pick(big_cat, np.zeros(len(grp), dtype=np.int64), rng.random(len(grp)))
    tb = end_t[grp] + rng.integers(300, 2400, len(grp)) + pos * rng.integers(60, 900, len(grp))
    amt = np.round(np.clip(_lognormal(rng, 25000, 0.6, len(grp)), 5000, 150000))
    rows.add(t=tb, cust=v[grp], ctype=T_MERCHANT, cpk=K_MERCHANT, cpi=bm, chan=CARD_ECOM,
             paise=(amt * 100).astype(np.int64), status=(rng.random(len(grp)) < 0.15).astype(np.int8),
             dev=device[grp], ip=ip[grp], city=city[grp], fraud=3)


def _compromised_merchant(rng, c: _Customers, mer: _Merchants, rows: _Rows, dev: _Devices, days: int,
                          k: int) -> None:
    # card swipes so far (ordinary rows only: this runs before the later fraud typologies)
    parts = rows.parts
    sel = [(parts["chan"][i] == CARD_POS) & (parts["ctype"][i] == T_MERCHANT) & (parts["fraud"][i] == 0)
           for i in range(len(parts["t"]))]  # a handful of parts
    swipe = {key: np.concatenate([parts[key][i][m] for i, m in enumerate(sel)]) for key in ("t", "cust", "cpi")}
    n_sw = len(swipe["t"])
    if not n_sw:
        return
    cand = np.flatnonzero(swipe["t"] < int(days * 0.6) * DAY)
    cand = cand if len(cand) else np.arange(n_sw)
    # compromise the terminals where some random card swipes happened (busy merchants are likelier)
    seed_rows = rng.choice(cand, size=min(len(cand), 4 * k), replace=False)
    _, first = np.unique(swipe["cpi"][seed_rows], return_index=True)
    first = np.sort(first)[:k]
    bad = swipe["cpi"][seed_rows[first]].astype(np.int64)
    k = len(bad)
    w0 = np.maximum(swipe["t"][seed_rows[first]].astype(np.int64) // DAY - rng.integers(0, 3, k), 0) * DAY
    w1 = w0 + rng.integers(3, 11, k) * DAY
    slot = np.full(mer.m, -1, dtype=np.int64)
    slot[bad] = np.arange(k)
    s = slot[swipe["cpi"]]
    ri = np.flatnonzero(s >= 0)
    s = s[ri]
    tt = swipe["t"][ri].astype(np.int64)
    inwin = (tt >= w0[s]) & (tt < w1[s])
    ri, s, tt = ri[inwin], s[inwin], tt[inwin]
    if not len(ri):
        return
    cust = swipe["cust"][ri].astype(np.int64)
    pair = s * c.n + cust
    upair, inv = np.unique(pair, return_inverse=True)
    first_use = np.full(len(upair), np.iinfo(np.int64).max)
    np.minimum.at(first_use, inv, tt)
    victim = (upair % c.n).astype(np.int64)
    merch_city = mer.city[bad[upair // c.n]]
    # a share of the cards seen there (at least one per terminal) is used fraudulently later
    keep = ((rng.random(len(upair)) < 0.45) | (_rank_within(upair // c.n) == 0)) & ~c.mule[victim]
    victim, first_use, merch_city = victim[keep], first_use[keep], merch_city[keep]
    kv = len(victim)
    if not kv:
        return
    ncharge = rng.integers(1, 5, kv)
    city = _other_city(rng, c.home[victim], merch_city)
    device = dev.new(kv)
    ip = _bad_ip(rng, kv)
    grp, pos = _expand(ncharge)
    t0_day = np.minimum(first_use // DAY + rng.integers(1, 15, kv), max(days - 1, 0))
    t0 = np.maximum(t0_day * DAY + rng.integers(0, DAY, kv), first_use + 3600)
    t = t0[grp] + _group_cumsum(np.where(pos == 0, 0, rng.integers(1800, 2 * DAY, len(grp))), grp, ncharge)
    ecom = rng.random(len(grp)) < 0.5
    pos_cats = np.array([_CAT["electronics"], _CAT["jewellery"], _CAT["department_store"], _CAT["clothing"]])
    ccat = np.where(ecom, np.where(rng.random(len(grp)) < 0.7, _CAT["ecommerce"], _CAT["travel"]),
                    pos_cats[rng.integers(0, 4, len(grp))])
    m = mer.pick(ccat, city[grp], rng.random(len(grp)))
    # a cloned card is swiped in the fraud city; without a shop there it is used online instead
    moved = ~ecom & (mer.city[m] != city[grp])
    ecom |= moved
    m = np.where(moved, mer.pick(np.full(len(grp), _CAT["ecommerce"]), city[grp], rng.random(len(grp))), m)
    loc = np.where(ecom, city[grp], mer.city[m])
    amt = np.round(np.clip(_lognormal(rng, 9000, 0.8, len(grp)), 500, 200000))
    rows.add(t=t, cust=victim[grp], ctype=T_MERCHANT, cpk=K_MERCHANT, cpi=m, chan=np.where(ecom, CARD_ECOM, CARD_POS),
             paise=(amt * 100).astype(np.int64), status=(rng.random(len(grp)) < 0.1).astype(np.int8),
             dev=np.where(ecom, device[grp], -1), ip=np.where(ecom, ip[grp], 0), city=loc, fraud=4)


def _velocity_burst(rng, c: _Customers, mer: _Merchants, rows: _Rows, days: int, k: int) -> None:
    pool = np.flatnonzero(~c.mule)
    v = _victims(rng, pool, k)
    day = rng.integers(0, days, k)
    t0 = day * DAY + rng.integers(8 * 3600, 22 * 3600, k)
    ntx = rng.integers(10, 31, k)
    npay = rng.integers(3, 9, k)
    slots = 8
    vv = np.repeat(v, slots)
    pay_is_cust = rng.random(k * slots) < 0.6
    pay_cust = _pick_other(rng, k * slots, c.n, vv)
    cats = np.array([_CAT["gaming"], _CAT["ecommerce"], _CAT["misc_retail"]])
    pay_m = mer.pick(cats[rng.integers(0, 3, k * slots)], np.repeat(c.home[v], slots), rng.random(k * slots))
    grp, pos = _expand(ntx)
    sl = grp * slots + rng.integers(0, 1 << 30, len(grp)) % npay[grp]
    is_cust = pay_is_cust[sl]
    off = rng.integers(0, 3600, len(grp))
    t = t0[grp] + off
    rupees = np.clip(_lognormal(rng, 1500, 0.7, len(grp)), 100, 20000)
    paise = _round_p2p(rng, rupees)
    rows.add(t=t, cust=v[grp], ctype=np.where(is_cust, T_P2P, T_MERCHANT), cpk=np.where(is_cust, K_CUSTOMER, K_MERCHANT),
             cpi=np.where(is_cust, pay_cust[sl], pay_m[sl]), chan=UPI, paise=paise,
             status=(rng.random(len(grp)) < 0.05).astype(np.int8), city=c.home[v[grp]], fraud=5)


# --------------------------------------------------------------------------------------------
# Assembly and writing
# --------------------------------------------------------------------------------------------

def _external_vpas(rng: np.random.Generator, k: int) -> pl.Series:
    first = rng.integers(0, len(_FIRST), k)
    last = rng.integers(0, len(_LAST), k)
    num = rng.integers(100_000, 1_000_000, k)
    handle = rng.integers(0, len(_EXT_HANDLES), k)
    df = pl.DataFrame({"f": pl.Series(_FIRST).gather(first), "l": pl.Series(_LAST).gather(last), "n": num,
                       "h": pl.Series(_EXT_HANDLES).gather(handle)})
    return df.select(pl.concat_str([pl.col("f").str.to_lowercase(), pl.col("l").str.slice(0, 1).str.to_lowercase(),
                                    pl.col("n").cast(pl.String), pl.lit("@"), pl.col("h")])).to_series()


def generate(out_dir: Path, customers: int = 2000, days: int = 60, seed: int = 7,
             start: date = date(2026, 1, 1)) -> GenerateSummary:
    """Write customers.csv, merchants.csv, transactions/txns_YYYY-MM-DD.csv and labels.csv to out_dir.

    Days run from ``start`` to ``start + days - 1`` (IST); every day gets a file, stale
    ``txns_*.csv`` files in ``out_dir/transactions`` are removed first. Same arguments, same bytes.

    Transaction rows, by ``counterparty_type``:

    * MERCHANT - ``counterparty_id`` is a merchant_id, ``mcc`` the merchant's MCC, DEBIT.
    * P2P - ``counterparty_id`` is the other party's VPA, ``mcc`` empty. A successful DEBIT to one
      of our customers has a CREDIT row for the payee (own txn_ref, same txn_time, amount_inr and
      channel). Transfers to outside VPAs (account takeover payees) have no credit leg.
    * ATM - ``counterparty_id`` is the ATM's terminal_id (an mcc 6011 row of merchants.csv), DEBIT.
    * SALARY - ``counterparty_id`` is an employer/pension payer id (``E`` + 6 digits), NEFT CREDIT,
      ``mcc`` empty.

    ``payer_vpa`` is the VPA of whoever pays: the customer's own VPA on DEBIT rows, the sender's
    VPA on P2P CREDIT rows (equal to ``counterparty_id``), empty on SALARY rows. ``device_id`` and
    ``ip_address`` are only filled on DEBIT rows made through a digital channel (not CARD_POS or
    ATM, never on CREDIT rows). ``city``/``state``/``pincode``/``latitude``/``longitude`` are where
    the transaction happened (the shop or ATM for physical payments, the customer's location
    otherwise, the payee's home for credits).
    """
    if customers < 20:
        raise ValueError("customers must be at least 20")
    if not 1 <= days <= 3650:
        raise ValueError("days must be between 1 and 3650")
    out_dir = Path(out_dir)
    ss = np.random.SeedSequence(seed)
    r_cust, r_merch, r_link, r_norm, r_sched, r_fraud, r_final = (np.random.default_rng(s) for s in ss.spawn(7))
    n = customers
    end = start + timedelta(days=days - 1)
    _, weekday, dom = _calendar(start, days)

    c = _make_customers(r_cust, n, start)
    mer = _make_merchants(r_merch, max(50, round(n / 20)), c.home)
    _customer_links(r_link, c, mer)

    # one trip away from home for some customers
    trip_on = r_link.random(n) < 0.25
    trip_start = np.where(trip_on, r_link.integers(0, days, n), days + 1)
    trip_end = trip_start + r_link.integers(2, 8, n)
    trip_city = _other_city(r_link, c.home)

    rows = _Rows()
    _normal_activity(r_norm, c, mer, rows, days, weekday, dom, (trip_start, trip_end, trip_city))
    n_emp, n_pension = max(5, n // 40), 3
    _scheduled(r_sched, c, mer, rows, start, days, n_emp, n_pension)

    dev = _Devices(r_fraud, n)
    ext: list[np.ndarray] = []
    scale = n * days / 120_000
    cnt = {name: max(1, round(scale * base)) for name, base in
           zip(FRAUD_TYPES, (40, 18, 8, 6, 10))}
    _account_takeover(r_fraud, c, rows, dev, days, cnt["account_takeover"], ext)
    _mule_network(r_fraud, c, mer, rows, dev, days, cnt["mule_network"])
    _card_testing(r_fraud, c, mer, rows, dev, days, cnt["card_testing"])
    _compromised_merchant(r_fraud, c, mer, rows, dev, days, cnt["compromised_merchant"])
    _velocity_burst(r_fraud, c, mer, rows, days, cnt["velocity_burst"])
    n_ext = int(sum(len(e) for e in ext))
    r = rows.concat()
    del rows

    rng = r_final
    # status of ordinary rows
    unset = np.flatnonzero(r["status"] == _UNSET)
    hour = (r["t"][unset] % DAY) // 3600
    chan = r["chan"][unset]
    p_fail = 0.012 + 0.02 * (r["paise"][unset] > 50_000_00) + 0.01 * (hour < 5) + 0.006 * (
        (chan == CARD_POS) | (chan == CARD_ECOM))
    r["status"][unset] = rng.random(len(unset), dtype=np.float32) < p_fail
    del unset, hour, chan, p_fail
    # customers' own devices and IPs on channels where one is seen
    own = np.flatnonzero(r["dev"] == _OWN_DEVICE)
    cust = r["cust"][own]
    show = _DEVICE_CHANNELS[r["chan"][own]] & (r["dirn"][own] == DEBIT)
    second = (c.n_dev[cust] > 1) & (rng.random(len(own), dtype=np.float32) < 0.3)
    r["dev"][own] = np.where(show, cust + np.where(second, n, 0), -1)
    last_oct = c.ip_last[cust, rng.integers(0, 3, len(own))]
    r["ip"][own] = np.where(show, c.ip24[cust] | last_oct, 0)
    del own, cust, show, second, last_oct
    # P2P credits mirror every successful transfer to one of our customers
    mi = np.flatnonzero((r["ctype"] == T_P2P) & (r["dirn"] == DEBIT) & (r["cpk"] == K_CUSTOMER) & (r["status"] == 0))
    k = len(mi)
    payee = r["cpi"][mi]
    mirror = {"t": r["t"][mi], "cust": payee, "ctype": T_P2P, "cpk": K_CUSTOMER, "cpi": r["cust"][mi],
              "chan": r["chan"][mi], "dirn": CREDIT, "paise": r["paise"][mi], "status": 0, "dev": -1, "ip": 0,
              "city": c.home[payee], "fraud": 0, "payer": _PAYER_COUNTERPARTY}
    del mi, payee
    # keep the period, order by time (rows past the last day sort to the end and are cut)
    t_all = np.concatenate([r["t"], mirror["t"]])
    total = int(np.count_nonzero(t_all < days * DAY))
    order = np.argsort(t_all, kind="stable")[:total]
    del t_all
    for key, dt in _COLS.items():
        m = mirror[key]
        m = np.full(k, m, dtype=dt) if np.ndim(m) == 0 else m.astype(dt, copy=False)
        r[key] = np.concatenate([r[key], m])[order]
    del mirror, order

    # references: T + Y DDD HH (year digit, day of year, hour) + 6-digit sequence within the hour
    hour_abs = r["t"] // 3600
    bounds = np.searchsorted(hour_abs, np.arange(days * 24 + 1))
    if np.diff(bounds).max(initial=0) >= 1_000_000:
        raise ValueError("more than a million transactions in one hour; use fewer customers")
    hour_off = rng.integers(0, 1_000_000, days * 24)
    rank = np.arange(total) - bounds[hour_abs]
    cal = [start + timedelta(days=i) for i in range(days)]  # per day
    yddd = np.array([(d.year % 10) * 1000 + d.timetuple().tm_yday for d in cal], dtype=np.int64)
    ref = (yddd[hour_abs // 24] * 100 + hour_abs % 24) * 1_000_000 + (hour_off[hour_abs] + rank) % 1_000_000
    del hour_abs, rank

    # location detail: pincode and jittered coordinates (4 decimals, kept as integers)
    cust = r["cust"]
    city = r["city"].astype(np.intp)
    is_m = (r["cpk"] == K_MERCHANT) | (r["cpk"] == K_TERMINAL)
    mi = np.where(is_m, r["cpi"], 0)
    at_merchant = (is_m & _PHYSICAL[mer.cat[mi]] | (r["cpk"] == K_TERMINAL)) & (mer.city[mi] == city)
    pin = np.where(at_merchant, mer.pin[mi], np.where(city == c.home[cust], c.home_pin[cust],
                                                      _CITY_PIN[city] * 1000 + rng.integers(1, 100, total)))
    lat = np.round((_CITY_LAT[city] + rng.standard_normal(total, dtype=np.float32) * 0.03) * 10_000).astype(np.int32)
    lon = np.round((_CITY_LON[city] + rng.standard_normal(total, dtype=np.float32) * 0.03) * 10_000).astype(np.int32)
    del at_merchant

    # string tables; rows carry indices into them (last entry of each table is null)
    ct = c.table
    null = pl.Series([None], dtype=pl.String)
    cp_table = pl.concat([mer.table["merchant_id"], ct["vpa"], _external_vpas(r_fraud, n_ext),
                          mer.table["terminal_id"], _employer_ids(r_fraud, n_emp + n_pension), null]).rechunk()
    cp_idx = np.cumsum([0, mer.m, n, n_ext, mer.m])[r["cpk"]] + r["cpi"]
    mcc_table = pl.concat([mer.table["mcc"], null]).rechunk()
    mcc_idx = np.where(is_m, r["cpi"], mer.m)
    vpa_table = pl.concat([ct["vpa"], null]).rechunk()
    payer_idx = np.where(r["payer"] == _PAYER_SELF, cust, np.where(r["payer"] == _PAYER_COUNTERPARTY, r["cpi"], n))
    dev_table = pl.concat([dev.table(), null]).rechunk()
    dev_idx = np.where(r["dev"] < 0, len(dev_table) - 1, r["dev"])
    ip = np.where(r["ip"] > 0, r["ip"].astype(np.int64), -1)
    del is_m, mi
    tables = {
        "tod": _time_of_day_table(), "customer_id": ct["customer_id"], "account_number": ct["account_number"],
        "customer_name": ct["full_name"], "mobile": ct["mobile"], "ifsc": ct["ifsc"], "vpa": vpa_table,
        "cp": cp_table, "mcc": mcc_table, "ctype": pl.Series(_CTYPES), "chan": pl.Series(_CHANNELS),
        "dir": pl.Series(["DEBIT", "CREDIT"]), "status": pl.Series(["SUCCESS", "FAILED"]), "dev": dev_table,
        "city": pl.Series(_CITY_NAME), "state": pl.Series(_CITY_STATE),
    }

    def g(table: str, col: str) -> pl.Expr:
        return pl.lit(tables[table]).gather(pl.col(col))

    def dec(col: str, places: int) -> pl.Expr:
        x = pl.col(col)
        return pl.concat_str([(x // 10 ** places).cast(pl.String), pl.lit("."),
                              (x % 10 ** places).cast(pl.String).str.zfill(places)])

    ipc = pl.col("ip")
    exprs = dict(
        txn_ref=pl.concat_str([pl.lit("T"), pl.col("ref").cast(pl.String).str.zfill(12)]),
        txn_time=pl.concat_str([pl.col("day"), g("tod", "tod")], separator=" "),
        customer_id=g("customer_id", "cust"), account_number=g("account_number", "cust"),
        customer_name=g("customer_name", "cust"), mobile=g("mobile", "cust"), payer_vpa=g("vpa", "payer"),
        counterparty_id=g("cp", "cp"), counterparty_type=g("ctype", "ctype"), mcc=g("mcc", "mcc"),
        channel=g("chan", "chan"), direction=g("dir", "dirn"), amount_inr=dec("paise", 2),
        status=g("status", "status"), device_id=g("dev", "dev"),
        ip_address=pl.when(ipc >= 0).then(pl.concat_str(
            [(ipc // 16_777_216).cast(pl.String), (ipc // 65_536 % 256).cast(pl.String),
             (ipc // 256 % 256).cast(pl.String), (ipc % 256).cast(pl.String)], separator=".")),
        city=g("city", "city"), state=g("state", "city"), pincode=pl.col("pin").cast(pl.String),
        latitude=dec("lat", 4), longitude=dec("lon", 4), ifsc=g("ifsc", "cust"),
    )
    assert tuple(exprs) == TRANSACTION_COLUMNS

    out_dir.mkdir(parents=True, exist_ok=True)
    tdir = out_dir / "transactions"
    tdir.mkdir(exist_ok=True)
    for old in sorted(tdir.glob("txns_*.csv")):
        old.unlink()
    ct.write_csv(out_dir / "customers.csv")
    mer.table.write_csv(out_dir / "merchants.csv")

    day_bounds = np.searchsorted(r["t"], np.arange(days + 1) * DAY)
    with ThreadPoolExecutor(max_workers=1) as pool:  # write one day while the next is formatted
        pending = None
        for d in range(days):  # one file per day
            sl = slice(int(day_bounds[d]), int(day_bounds[d + 1]))
            day_str = cal[d].isoformat()
            frame = pl.DataFrame({
                "ref": ref[sl], "tod": r["t"][sl] % DAY, "cust": cust[sl],
                "payer": payer_idx[sl], "cp": cp_idx[sl], "ctype": r["ctype"][sl], "mcc": mcc_idx[sl],
                "chan": r["chan"][sl], "dirn": r["dirn"][sl], "paise": r["paise"][sl], "status": r["status"][sl],
                "dev": dev_idx[sl], "ip": ip[sl], "city": city[sl], "pin": pin[sl], "lat": lat[sl], "lon": lon[sl],
            }).with_columns(day=pl.lit(day_str)).select(**exprs)
            if pending is not None:
                pending.result()
            pending = pool.submit(frame.write_csv, tdir / f"txns_{day_str}.csv", quote_style="never")
        if pending is not None:
            pending.result()

    # labels: only fraud rows, in time order
    fi = np.flatnonzero(r["fraud"] > 0)
    fcode = r["fraud"][fi].astype(np.int64)
    delay = _FRAUD_DELAY_DAYS[fcode] * DAY * np.exp(rng.standard_normal(len(fi)) * 0.9)
    delay = np.clip(delay, 3600, 45 * DAY).astype(np.int64)
    start_epoch = int((np.datetime64(start, "s") - np.datetime64("1970-01-01T00:00:00", "s")).astype(np.int64))
    labels = pl.DataFrame({"ref": ref[fi], "fraud_type": pl.Series(FRAUD_TYPES).gather(fcode - 1),
                           "rep": r["t"][fi].astype(np.int64) + delay + start_epoch})
    labels = labels.select(
        txn_ref=pl.concat_str([pl.lit("T"), pl.col("ref").cast(pl.String).str.zfill(12)]),
        label=pl.lit(1, dtype=pl.Int8),
        fraud_type="fraud_type",
        reported_at=pl.concat_str([pl.from_epoch(pl.col("rep"), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S"),
                                   pl.lit("+05:30")]),
    )
    labels.write_csv(out_dir / "labels.csv")

    by_type = np.bincount(fcode - 1, minlength=len(FRAUD_TYPES))
    return GenerateSummary(out_dir=out_dir, customers=n, merchants=mer.m, transactions=total,
                           fraud_transactions=int(len(fi)),
                           fraud_by_type={name: int(by_type[i]) for i, name in enumerate(FRAUD_TYPES)},
                           start=start, end=end)


def _employer_ids(rng: np.random.Generator, k: int) -> pl.Series:
    num = _unique_ints(rng, k, 100_000, 1_000_000)
    return _chars(np.concatenate([_const("E", k), _digits(num, 6)], axis=1))


def _time_of_day_table() -> pl.Series:
    s = np.arange(DAY)
    hh, mm, ss = s // 3600, s // 60 % 60, s % 60
    mat = np.concatenate([_digits(hh, 2), _const(":", DAY), _digits(mm, 2), _const(":", DAY), _digits(ss, 2)], axis=1)
    return _chars(mat)
