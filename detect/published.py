"""The seed papers' published detection mAP, to print next to what a run measures.

Numbers as printed in the papers (percent). THUMOS14 at tIoU 0.1 ... 0.9 (a
dash in the paper is left out); ActivityNet 1.3 at 0.5, 0.75, 0.95. Each
entry names the features the paper used: a comparison means most on the same
features, and says how far it is from that setting otherwise.

Sources: TSRNet (Zhang et al., AAAI 2019) Tables 3-4, which also list
UntrimmedNet and STPN; STPN (Nguyen et al., CVPR 2018); UntrimmedNet (Wang et
al., CVPR 2017); KT-MGFN (Su et al., IEEE TMM 2020) Table III.
"""
from __future__ import annotations

_T = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_A = (0.5, 0.75, 0.95)


def _row(tious, values, features, source):
    return {"mAP": dict(zip(tious, values)), "features": features, "source": source}


PUBLISHED = {
    "thumos14": {
        "tsrnet": _row(_T, (55.9, 46.9, 38.3, 28.1, 18.6, 11.0, 5.59, 2.19, 0.29),
                       "two-stream ResNet101 (fine-tuned)", "TSRNet Table 3"),
        "tsrnet-fc1": _row(_T, (53.5, 45.3, 35.9, 26.5, 17.2, 10.4, 5.31, 1.93, 0.21),
                           "two-stream ResNet101 (fine-tuned)", "TSRNet Table 3 (w/o L_FC2)"),
        "stpn": _row(_T, (52.0, 44.7, 35.5, 25.8, 16.9, 9.9, 4.3, 1.2, 0.1), "I3D (Kinetics)",
                     "STPN; TSRNet Table 3"),
        "stpn (UntrimmedNet features)": _row(_T, (45.3, 38.8, 31.1, 23.5, 16.2, 9.8, 5.1, 2.0, 0.3),
                                             "UntrimmedNet", "STPN; TSRNet Table 3"),
        "untrimmednet-soft": _row(_T[:5], (44.4, 37.7, 28.2, 21.1, 13.7), "UntrimmedNet (TSN)",
                                  "UntrimmedNet; TSRNet Table 3"),
        "kt-mgfn": _row(_T[:7], (56.5, 51.3, 42.2, 33.8, 25.6, 17.0, 7.5), "I3D", "KT-MGFN Table III"),
        "kt-mgfn (UntrimmedNet features)": _row(_T[:7], (52.3, 46.6, 39.0, 30.7, 22.7, 13.6, 5.9), "UntrimmedNet",
                                                "KT-MGFN Table III"),
    },
    "activitynet13": {
        "tsrnet": _row(_A, (29.9, 17.2, 2.71), "two-stream ResNet101", "TSRNet Table 4"),
        "stpn": _row(_A, (29.3, 16.9, 2.6), "I3D", "STPN; TSRNet Table 4"),
    },
}


def comparison(dataset: str, measured: dict[str, dict[float, float]]) -> list[dict]:
    """One row per published entry whose method was measured: tIoU, published, measured, difference (points).

    ``measured``: method -> {tIoU: mAP in percent}. An entry named
    ``"method (features)"`` compares with ``method``.
    """
    if dataset not in PUBLISHED:
        raise KeyError(dataset)
    rows = []
    for name, entry in PUBLISHED[dataset].items():
        method = name.split(" (")[0]
        if method not in measured:
            continue
        for t, p in entry["mAP"].items():
            m = measured[method].get(round(t, 2))
            if m is None:
                continue
            rows.append({"method": method, "published as": name, "features": entry["features"],
                         "source": entry["source"], "tIoU": t, "published": p, "measured": round(m, 1),
                         "difference": round(m - p, 1)})
    return rows
