"""ISO 3166-1 alpha-2 country codes, for the ``nationality`` column (input-formats.md 1).

The 249 officially assigned codes of ISO 3166-1 (as maintained by the ISO 3166
Maintenance Agency). Shipped as a plain list so that checking a nationality
needs no network and no extra package; update it when ISO assigns or withdraws
a code.
"""

from __future__ import annotations

_ASSIGNED = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
"""

#: Officially assigned ISO 3166-1 alpha-2 codes.
ASSIGNED: frozenset[str] = frozenset(_ASSIGNED.split())

#: Codes outside the official list that registers use and the pipeline accepts
#: (input-formats.md 1): code -> meaning. ``XK`` is the user-assigned code the
#: European Union and the Dutch registers use for Kosovo.
EXTRA: dict[str, str] = {"XK": "Kosovo (user-assigned code, used by the EU)"}

#: Frequent mistakes -> the ISO code meant (said in the error message).
LIKELY_MEANT: dict[str, str] = {
    "UK": "GB",
    "EL": "GR",
    "EN": "GB",
    "AN": "CW, SX or BQ (the former Netherlands Antilles)",
}

#: Every code the ``nationality`` column accepts.
NATIONALITY_CODES: frozenset[str] = ASSIGNED | frozenset(EXTRA)
