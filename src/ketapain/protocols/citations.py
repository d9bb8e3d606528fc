"""The clinical works that screening, guardrails and planning rest on.

Each rule cites one of these with a locator saying which recommendation or table it
uses (``SOURCE.at("...")``). Pharmacology sources live in :mod:`ketapain.sources`.

>>> SCHWENK_2018.short()
'Schwenk 2018'
"""

from __future__ import annotations

from typing import Final

from ketapain.sources import NOPPERS_2011_LIVER, Source

__all__ = [
    "ALDRETE_1995",
    "ANAND_2000",
    "ANDRADE_2017",
    "ANDRASHKO_2020",
    "ASHTON_2002",
    "DEVINE_1974",
    "DOWELL_2022",
    "FDA_2009_DILI",
    "GOLDBERG_2005",
    "HAGELBERG_2010",
    "HARTLE_2016",
    "ICD_10_CM",
    "MO_2020",
    "NOPPERS_2011_LIVER",
    "PELTONIEMI_2011",
    "PELTONIEMI_2012_GRAPEFRUIT",
    "PELTONIEMI_2012_RIFAMPICIN",
    "SCHWENK_2018",
    "SPRAVATO_LABEL",
    "TRAYNOR_1995",
    "ZOFRAN_LABEL",
]

SCHWENK_2018: Final = Source(
    authors="Schwenk ES, Viscusi ER, Buvanendran A, et al.",
    year=2018,
    journal="Reg Anesth Pain Med 43(5):456-466",
    title="Consensus guidelines on the use of intravenous ketamine infusions for acute pain "
    "management",
    doi="10.1097/AAP.0000000000000806",
    locator="bolus up to 0.35 mg/kg; infusion generally up to 1 mg/kg/h without intensive "
    "monitoring",
)
GOLDBERG_2005: Final = Source(
    authors="Goldberg ME, Domsky R, Scaringe D, et al.",
    year=2005,
    journal="Pain Physician 8(2):175-179",
    title="Multi-day low dose ketamine infusion for the treatment of complex regional pain "
    "syndrome",
    locator="40 -> 80 mg per 4-h session for 10 days; continuous ECG and SpO2, NIBP every 15 min",
)
MO_2020: Final = Source(
    authors="Mo H, Campbell MJ, Fertel BS, et al.",
    year=2020,
    journal="West J Emerg Med 21(2):272-281",
    title="Ketamine safety and use in the emergency department for pain and "
    "agitation/delirium: a health system experience",
    locator="Table 1: do not give with SBP < 90 or > 180 mmHg, HR < 50 or > 150/min, "
    "RR < 10 or > 30/min",
)
HARTLE_2016: Final = Source(
    authors="Hartle A, McCormack T, Carlisle J, et al.",
    year=2016,
    journal="Anaesthesia 71(3):326-337",
    title="The measurement of adult blood pressure and management of hypertension before "
    "elective surgery",
    doi="10.1111/anae.13348",
    locator="proceed with elective procedures when blood pressure is below 180/110 mmHg",
)
SPRAVATO_LABEL: Final = Source(
    authors="Janssen Pharmaceuticals",
    year=2019,
    journal="SPRAVATO (esketamine) nasal spray, US prescribing information",
    title="Spravato prescribing information",
    locator="assess blood pressure before dosing; caution above 140/90 mmHg; observe at least "
    "2 h; no driving until the next day after restful sleep; psychostimulants and MAOIs "
    "raise blood pressure; CNS depressants increase sedation",
)
PELTONIEMI_2011: Final = Source(
    authors="Peltoniemi MA, Saari TI, Hagelberg NM, et al.",
    year=2011,
    journal="Clin Pharmacol Ther 90(2):296-302",
    title="Exposure to oral S-ketamine is unaffected by itraconazole but greatly increased by "
    "ticlopidine",
    doi="10.1038/clpt.2011.140",
    locator="ticlopidine (CYP2B6) raised oral S-ketamine AUC 2.4-fold; itraconazole no change",
)
HAGELBERG_2010: Final = Source(
    authors="Hagelberg NM, Peltoniemi MA, Saari TI, et al.",
    year=2010,
    journal="Eur J Pain 14(6):625-629",
    title="Clarithromycin, a potent inhibitor of CYP3A, greatly increases exposure to oral "
    "S-ketamine",
    doi="10.1016/j.ejpain.2009.10.003",
    locator="oral S-ketamine Cmax 3.6-fold, AUC 2.6-fold",
)
PELTONIEMI_2012_GRAPEFRUIT: Final = Source(
    authors="Peltoniemi MA, Saari TI, Hagelberg NM, et al.",
    year=2012,
    journal="Eur J Clin Pharmacol 68(6):979-986",
    title="S-ketamine concentrations are greatly increased by grapefruit juice",
    doi="10.1007/s00228-012-1214-9",
    locator="oral S-ketamine AUC 3.0-fold, Cmax 2.1-fold",
)
PELTONIEMI_2012_RIFAMPICIN: Final = Source(
    authors="Peltoniemi MA, Saari TI, Hagelberg NM, et al.",
    year=2012,
    journal="Basic Clin Pharmacol Toxicol 111(5):325-332",
    title="Rifampicin has a profound effect on the pharmacokinetics of oral S-ketamine and "
    "less on intravenous S-ketamine",
    doi="10.1111/j.1742-7843.2012.00908.x",
    locator="AUC down 86% orally and 14% intravenously",
)
ANDRADE_2017: Final = Source(
    authors="Andrade C",
    year=2017,
    journal="J Clin Psychiatry 78(7):e858-e861",
    title="Ketamine for depression, 5: potential pharmacokinetic and pharmacodynamic drug "
    "interactions",
    doi="10.4088/JCP.17f11802",
    locator="CYP2B6 and CYP3A4 inhibitors raise and inducers lower ketamine exposure",
)
ANAND_2000: Final = Source(
    authors="Anand A, Charney DS, Oren DA, et al.",
    year=2000,
    journal="Arch Gen Psychiatry 57(3):270-276",
    title="Attenuation of the neuropsychiatric effects of ketamine with lamotrigine",
    doi="10.1001/archpsyc.57.3.270",
    locator="lamotrigine 300 mg attenuated ketamine's neuropsychiatric effects",
)
ANDRASHKO_2020: Final = Source(
    authors="Andrashko V, Novak T, Brunovsky M, et al.",
    year=2020,
    journal="Front Psychiatry 11:844",
    title="The antidepressant effect of ketamine is dampened by concomitant benzodiazepine "
    "medication",
    doi="10.3389/fpsyt.2020.00844",
    locator="more than 8 mg diazepam-equivalent a day predicted non-response",
)
ASHTON_2002: Final = Source(
    authors="Ashton CH",
    year=2002,
    journal="Benzodiazepines: how they work and how to withdraw (The Ashton Manual), "
    "Newcastle University",
    title="The Ashton Manual",
    locator="Table 1: doses equivalent to diazepam 10 mg",
)
DOWELL_2022: Final = Source(
    authors="Dowell D, Ragan KR, Jones CM, Baldwin GT, Chou R",
    year=2022,
    journal="MMWR Recomm Rep 71(3):1-95",
    title="CDC clinical practice guideline for prescribing opioids for pain - United States, 2022",
    doi="10.15585/mmwr.rr7103a1",
    locator="Table: morphine milligram equivalent conversion factors; 50 MME/day threshold",
)
DEVINE_1974: Final = Source(
    authors="Devine BJ",
    year=1974,
    journal="Drug Intell Clin Pharm 8:650-655",
    title="Gentamicin therapy",
    locator="ideal body weight: 50 kg (men) or 45.5 kg (women) + 2.3 kg per inch above 5 ft",
)
TRAYNOR_1995: Final = Source(
    authors="Traynor AM, Nafziger AN, Bertino JS Jr",
    year=1995,
    journal="Antimicrob Agents Chemother 39(2):545-548",
    title="Aminoglycoside dosing weight correction factors for patients of various body sizes",
    doi="10.1128/AAC.39.2.545",
    locator="adjusted body weight = IBW + 0.4 x (actual - IBW)",
)
ZOFRAN_LABEL: Final = Source(
    authors="GlaxoSmithKline",
    year=2021,
    journal="ZOFRAN (ondansetron) injection, US prescribing information",
    title="Zofran prescribing information",
    locator="prevention of nausea: 4 mg IV undiluted over at least 30 s",
)
ALDRETE_1995: Final = Source(
    authors="Aldrete JA",
    year=1995,
    journal="J Clin Anesth 7(1):89-91",
    title="The post-anesthesia recovery score revisited",
    doi="10.1016/0952-8180(94)00001-K",
    locator="SpO2 above 92% on room air scores 2; below 90% even with oxygen scores 0",
)
FDA_2009_DILI: Final = Source(
    authors="US Food and Drug Administration",
    year=2009,
    journal="Guidance for industry: drug-induced liver injury, premarketing clinical evaluation",
    title="Drug-induced liver injury: premarketing clinical evaluation",
    locator="Hy's law: aminotransferase above 3x ULN with total bilirubin above 2x ULN",
)
ICD_10_CM: Final = Source(
    authors="National Center for Health Statistics",
    year=2025,
    journal="ICD-10-CM, International Classification of Diseases, 10th revision, Clinical "
    "Modification (FY2025)",
    title="ICD-10-CM",
    locator="codes matched by category prefix",
)
