"""Citations as data.

Every published model, parameter, limit and rate in ketapain carries a :class:`Source`
beside it, so that a table, a plot or a recommendation can say *according to whom*.
The catalogue below holds the works the pharmacology engine cites; later layers add
their own next to the rules that use them.

Examples
--------
>>> KAMP_2020.short()
'Kamp 2020'
>>> KAMP_2020.cite().endswith("2020. Anesthesiology 133(6):1192-1213")
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANDRADE_2019",
    "BLONK_2010",
    "BOWDLE_1998",
    "CHAN_2022",
    "CHERNIK_1990",
    "CHONG_2009",
    "CLEMENTS_1981",
    "CLEMENTS_1982",
    "COHEN_2018",
    "DAHAN_2011",
    "DAYTON_1983",
    "DOMINO_1984",
    "EBERT_1997",
    "FANTA_2015",
    "FARRAR_2001",
    "FLINT_2017",
    "GOLDBERG_2010",
    "GUY_1976",
    "HERD_2007",
    "HIJAZI_2003",
    "KAMP_2020",
    "KETALAR_LABEL",
    "KOPPEL_1990",
    "LANGSJO_2005",
    "NOPPERS_2011",
    "NOPPERS_2011_LIVER",
    "OLOFSEN_2022",
    "PEREZ_RUIXO_2021",
    "RODRIGUES_2021",
    "SALAT_2015",
    "SCHWARTZMAN_2009",
    "SIGTERMANS_2009",
    "SIGTERMANS_2009_CRPS",
    "STANPUMP",
    "WANG_2019",
    "Source",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A published work, and where in it a number stands.

    Parameters
    ----------
    authors : str
        Author list as printed in the citation, e.g. ``"Domino EF, Zsigmond EK, ..."``.
    year : int | None
        Year of publication (None for unpublished, user-defined material).
    journal : str
        Journal (or publisher / software) and volume:pages.
    title : str
        Title of the work.
    doi : str | None
        DOI or PubMed id when known.
    locator : str | None
        Where in the work the number stands (table, page), or how it was obtained.
    """

    authors: str
    year: int | None
    journal: str
    title: str = ""
    doi: str | None = None
    locator: str | None = None

    def cite(self) -> str:
        """Return the short citation ``authors, year. journal``."""
        year = "n.d" if self.year is None else str(self.year)
        return f"{self.authors}, {year}. {self.journal}"

    def short(self) -> str:
        """Return ``FirstAuthor year``, e.g. ``'Domino 1984'``; an undated work (a clinic's
        page, a policy) is named in full."""
        if self.year is None:
            return self.authors
        first = self.authors.split(",")[0].split(" ")[0]
        return f"{first} {'n.d.' if self.year is None else self.year}"

    def at(self, locator: str) -> Source:
        """Return the same work pointing at another table or page."""
        return Source(
            authors=self.authors,
            year=self.year,
            journal=self.journal,
            title=self.title,
            doi=self.doi,
            locator=locator,
        )

    def as_dict(self) -> dict[str, str | int | None]:
        """Return the citation as a JSON-ready mapping."""
        return {
            "authors": self.authors,
            "year": self.year,
            "journal": self.journal,
            "title": self.title,
            "doi": self.doi,
            "locator": self.locator,
            "citation": self.cite(),
        }


DOMINO_1984 = Source(
    authors="Domino EF, Domino SE, Smith RE, et al.",
    year=1984,
    journal="Clin Pharmacol Ther 36(5):645-653",
    title="Ketamine kinetics in unmedicated and diazepam-premedicated subjects",
    doi="10.1038/clpt.1984.235",
    locator="micro-constants as shipped in STANPUMP DRUGS.C and stanpumpR R/drugs_ketamine.R",
)
STANPUMP = Source(
    authors="Shafer SL",
    year=1996,
    journal="STANPUMP (public-domain TCI program), DRUGS.C",
    title="STANPUMP",
    locator="void ketamine(): maximum rate 0.75 mg/kg/min",
)
KAMP_2020 = Source(
    authors="Kamp J, Olofsen E, Henthorn TK, van Velzen M, Niesters M, Dahan A",
    year=2020,
    journal="Anesthesiology 133(6):1192-1213",
    title="Ketamine pharmacokinetics: a systematic review of the literature, meta-analysis, "
    "and population analysis",
    doi="10.1097/ALN.0000000000003577",
    locator="abstract: weighted mean CL 79 L/h at 70 kg (95% CI 69-90), Vd 252 L",
)
CLEMENTS_1981 = Source(
    authors="Clements JA, Nimmo WS",
    year=1981,
    journal="Br J Anaesth 53(1):27-30",
    title="Pharmacokinetics and analgesic effect of ketamine in man",
    doi="PMID:7459184",
    locator="'Clements250' micro-constants as shipped in opentiva ketamine.py",
)
CLEMENTS_1982 = Source(
    authors="Clements JA, Nimmo WS, Grant IS",
    year=1982,
    journal="J Pharm Sci 71(5):539-542",
    title="Bioavailability, pharmacokinetics, and analgesic activity of ketamine in humans",
    doi="10.1002/jps.2600710516",
    locator="oral bioavailability 17%, intramuscular 93%",
)
HERD_2007 = Source(
    authors="Herd DW, Anderson BJ, Holford NHG",
    year=2007,
    journal="Paediatr Anaesth 17(7):622-629",
    title="Modeling the norketamine metabolite in children and the implications for analgesia",
    doi="PMID:17564643",
    locator="abstract: V1 38.7 L/70 kg, V2 102 L/70 kg, CL 90 L/h/70 kg, Q 215 L/h/70 kg, BSV",
)
HIJAZI_2003 = Source(
    authors="Hijazi Y, Bodonian C, Bolon M, Salord F, Boulieu R",
    year=2003,
    journal="Br J Anaesth 90(2):155-160",
    title="Pharmacokinetics and haemodynamics of ketamine in intensive care patients with "
    "brain or spinal cord injury",
    doi="PMID:12538370",
    locator="micro-constants as shipped in opentiva ketamine.py; abstract CL 36.0 (SD 13.3) "
    "mL/min/kg",
)
FLINT_2017 = Source(
    authors="Flint RB, Brouwer CNM, Kränzlin ASC, et al.",
    year=2017,
    journal="Paediatr Anaesth 27(11):1098-1107",
    title="Pharmacokinetics of S-ketamine during prolonged sedation at the pediatric "
    "intensive care unit",
    doi="10.1111/pan.13239",
    locator="as coded in nlmixr2lib modeldb/specificDrugs/Flint_2017_s_ketamine.R",
)
FANTA_2015 = Source(
    authors="Fanta S, Kinnunen M, Backman JT, Kalso E",
    year=2015,
    journal="Eur J Clin Pharmacol 71(4):441-447",
    title="Population pharmacokinetics of S-ketamine and norketamine in healthy volunteers "
    "after intravenous and oral dosing",
    doi="10.1007/s00228-015-1826-y",
    locator="abstract: CL 95 L/h/70 kg (IIV 13%), oral F 8% (IIV 11%), oral NK AUC 16.5x",
)
SIGTERMANS_2009 = Source(
    authors="Sigtermans M, Dahan A, Mooren R, Bauer M, Kest B, Sarton E, Olofsen E",
    year=2009,
    journal="Anesthesiology 111(4):892-903",
    title="S(+)-ketamine effect on experimental pain and cardiac output: a population "
    "pharmacokinetic-pharmacodynamic modeling study in healthy volunteers",
    doi="10.1097/ALN.0b013e3181b437b1",
    locator="abstract: women have 20% greater elimination clearance of S-ketamine and S-NK",
)
OLOFSEN_2022 = Source(
    authors="Olofsen E, Kamp J, Henthorn TK, van Velzen M, Niesters M, Sarton E, Dahan A",
    year=2022,
    journal="Anesthesiology 136(5):792-801",
    title="Ketamine psychedelic and antinociceptive effects are connected",
    doi="10.1097/ALN.0000000000004176",
    locator="S-ketamine C50 0.51 nmol/mL, t1/2ke0 8.3 min (5.1-13.0)",
)
PEREZ_RUIXO_2021 = Source(
    authors="Perez-Ruixo C, Rossenu S, Zannikos P, et al.",
    year=2021,
    journal="Clin Pharmacokinet 60(4):501-516",
    title="Population pharmacokinetics of esketamine nasal spray and its metabolite "
    "noresketamine in healthy subjects and patients with treatment-resistant depression",
    doi="10.1007/s40262-020-00953-4",
    locator="as coded in nlmixr2lib PerezRuixo_2020_esketamine.R: ka_po 0.97 /h after "
    "zero-order 0.32 h",
)
CHONG_2009 = Source(
    authors="Chong C, Schug SA, Page-Sharp M, Jenkins B, Ilett KF",
    year=2009,
    journal="Clin Drug Investig 29(5):317-324",
    title="Development of a sublingual/oral formulation of ketamine for use in neuropathic "
    "pain: preliminary findings from a three-way randomized, crossover study",
    doi="10.2165/00044011-200929050-00004",
    locator="abstract: oral F 23 +/- 9%, oral K + NK 59 +/- 16%, Tmax 0.96 h (n = 6)",
)
WANG_2019 = Source(
    authors="Wang J, Huang J, Yang S, et al.",
    year=2019,
    journal="Drug Des Devel Ther 13:4135-4144",
    title="Pharmacokinetics and safety of esketamine in Chinese patients undergoing painless "
    "gastroscopy in comparison with ketamine: a randomized, open-label clinical study",
    doi="10.2147/DDDT.S224553",
    locator="S-CL 18.4 +/- 3.4 and R-CL 15.8 +/- 3.1 mL/min/kg after racemate",
)
DAYTON_1983 = Source(
    authors="Dayton PG, Stiller RL, Cook DR, Perel JM",
    year=1983,
    journal="Eur J Clin Pharmacol 24(6):825-831",
    title="The binding of ketamine to plasma proteins: emphasis on human plasma",
    doi="10.1007/BF00607095",
    locator="pKa 7.5; up to 47% bound in human plasma",
)
KOPPEL_1990 = Source(
    authors="Köppel C, Arndt I, Ibe K",
    year=1990,
    journal="Eur J Drug Metab Pharmacokinet 15(3):259-263",
    title="Effects of enzyme induction, renal and cardiac function on ketamine plasma "
    "kinetics in patients with ketamine long-term analgosedation",
    locator="ketamine 1.2 +/- 0.3 ug/mL at 1.1-1.3 mg/kg/h for 3 days",
)
BLONK_2010 = Source(
    authors="Blonk MI, Koder BG, van den Bemt PMLA, Huygen FJPM",
    year=2010,
    journal="Eur J Pain 14(5):466-472",
    title="Use of oral ketamine in chronic pain management: a review",
    doi="10.1016/j.ejpain.2009.09.005",
    locator="start 0.5 mg/kg racemic orally, 3-4 times daily",
)
KETALAR_LABEL = Source(
    authors="Par Pharmaceutical",
    year=2022,
    journal="KETALAR (ketamine hydrochloride) injection, US prescribing information",
    title="Ketalar prescribing information",
    locator="Dosage and administration: IV induction 1-4.5 mg/kg",
)
ANDRADE_2019 = Source(
    authors="Andrade C",
    year=2019,
    journal="J Clin Psychiatry 80(1):19f12820",
    title="Oral ketamine for depression, 2: practical considerations",
    locator="oral doses in practice 0.25-7 mg/kg",
)

# --- Pharmacodynamics and clinical outcomes --------------------------------------------
DAHAN_2011 = Source(
    authors="Dahan A, Olofsen E, Sigtermans M, et al.",
    year=2011,
    journal="Eur J Pain 15(3):258-267",
    title="Population pharmacokinetic-pharmacodynamic modeling of ketamine-induced pain "
    "relief of chronic pain",
    doi="10.1016/j.ejpain.2010.06.016",
    locator="abstract: C50 10.5 +/- 4.8 ng/mL S-ketamine, t1/2 onset/offset 10.9 +/- 4.0 d, "
    "response probability 67 +/- 10% (ketamine) and 23 +/- 9% (placebo)",
)
SIGTERMANS_2009_CRPS = Source(
    authors="Sigtermans MJ, van Hilten JJ, Bauer MCR, et al.",
    year=2009,
    journal="Pain 145(3):304-311",
    title="Ketamine produces effective and long-term pain relief in patients with Complex "
    "Regional Pain Syndrome Type 1",
    doi="10.1016/j.pain.2009.06.023",
    locator="abstract: 100-h S-ketamine, end dose 22.2 +/- 2.0 mg/h/70 kg; week-1 NRS "
    "2.68 +/- 0.51 vs 5.45 +/- 0.48 (mean +/- SEM, n = 30 + 30); week 12 P = 0.07; "
    "psychomimetic effects 76% vs 18%",
)
NOPPERS_2011 = Source(
    authors="Noppers I, Niesters M, Swartjes M, et al.",
    year=2011,
    journal="Eur J Pain 15(9):942-949",
    title="Absence of long-term analgesic effect from a short-term S-ketamine infusion on "
    "fibromyalgia pain: a randomized, prospective, double blind, active placebo-controlled "
    "trial",
    doi="10.1016/j.ejpain.2011.03.008",
    locator="S-ketamine 0.5 mg/kg over 30 min: effect closely followed plasma concentrations",
)
NOPPERS_2011_LIVER = Source(
    authors="Noppers IM, Niesters M, Aarts LPHJ, et al.",
    year=2011,
    journal="Pain 152(9):2173-2178",
    title="Drug-induced liver injury following a repeated course of ketamine treatment for "
    "chronic pain in CRPS type 1 patients: a report of 3 cases",
    doi="10.1016/j.pain.2011.03.026",
    locator="3 of 6 patients: ALT, AST, ALP and GGT at least 3x the upper limit of normal",
)
LANGSJO_2005 = Source(
    authors="Långsjö JW, Maksimow A, Salmi E, et al.",
    year=2005,
    journal="Anesthesiology 103(2):258-268",
    title="S-ketamine anesthesia increases cerebral blood flow in excess of the metabolic "
    "needs in humans",
    doi="10.1097/00000542-200508000-00008",
    locator="S-ketamine 1959 +/- 442 ng/mL: heart rate up to +43.5%, MAP up to +27.0%",
)
EBERT_1997 = Source(
    authors="Ebert B, Mikkelsen S, Thorkildsen C, Borgbjerg FM",
    year=1997,
    journal="Eur J Pharmacol 333(1):99-104",
    title="Norketamine, the main metabolite of ketamine, is a non-competitive NMDA receptor "
    "antagonist in the rat cortex and spinal cord",
    doi="10.1016/S0014-2999(97)01116-3",
    locator="[3H]MK-801 Ki: S-ketamine 0.30, R-ketamine 1.4, S-norketamine 1.7, "
    "R-norketamine 13 umol/L",
)
SALAT_2015 = Source(
    authors="Sałat K, Siwek A, Starowicz G, et al.",
    year=2015,
    journal="Neuropharmacology 99:301-307",
    title="Antidepressant-like effects of ketamine, norketamine and dehydronorketamine in "
    "forced swim test: role of activity at NMDA receptor",
    doi="10.1016/j.neuropharm.2015.07.037",
    locator="[3H]MK-801 Ki: racemic ketamine 0.119, racemic norketamine 0.97 umol/L",
)
BOWDLE_1998 = Source(
    authors="Bowdle TA, Radant AD, Cowley DS, et al.",
    year=1998,
    journal="Anesthesiology 88(1):82-88",
    title="Psychedelic effects of ketamine in healthy volunteers: relationship to steady-state "
    "plasma concentrations",
    doi="10.1097/00000542-199801000-00015",
    locator="psychedelic VAS linear in concentration over 50-200 ng/mL racemic",
)
FARRAR_2001 = Source(
    authors="Farrar JT, Young JP, LaMoreaux L, Werth JL, Poole RM",
    year=2001,
    journal="Pain 94(2):149-158",
    title="Clinical importance of changes in chronic pain intensity measured on an 11-point "
    "numerical pain rating scale",
    doi="10.1016/S0304-3959(01)00349-9",
    locator="a 30% (or 2-point) NRS reduction corresponds to 'much improved'",
)
SCHWARTZMAN_2009 = Source(
    authors="Schwartzman RJ, Alexander GM, Grothusen JR, et al.",
    year=2009,
    journal="Pain 147(1-3):107-115",
    title="Outpatient intravenous ketamine for the treatment of complex regional pain "
    "syndrome: a double-blind placebo controlled study",
    locator="4 h/day for 10 days, up to 0.35 mg/kg/h, not above 25 mg/h",
)
GOLDBERG_2010 = Source(
    authors="Goldberg ME, Torjman MC, Schwartzman RJ, Mager DE, Wainer IW",
    year=2010,
    journal="Pain Physician 13(4):379-387",
    title="Pharmacodynamic profiles of ketamine (R)- and (S)- with 5-day inpatient infusion "
    "for the treatment of complex regional pain syndrome",
    locator="racemic ketamine titrated 10 -> 40 mg/h, stable after about 5 h, continued for 5 days",
)
COHEN_2018 = Source(
    authors="Cohen SP, Bhatia A, Buvanendran A, et al.",
    year=2018,
    journal="Reg Anesth Pain Med 43(5):521-546",
    title="Consensus guidelines on the use of intravenous ketamine infusions for chronic "
    "pain from the American Society of Regional Anesthesia and Pain Medicine, the American "
    "Academy of Pain Medicine, and the American Society of Anesthesiologists",
    doi="10.1097/AAP.0000000000000808",
    locator="a single 4-h day of at least 80 mg over more than 2 h as the minimum trial",
)
CHERNIK_1990 = Source(
    authors="Chernik DA, Gillings D, Laine H, et al.",
    year=1990,
    journal="J Clin Psychopharmacol 10(4):244-251",
    title="Validity and reliability of the Observer's Assessment of Alertness/Sedation "
    "Scale: study with intravenous midazolam",
    locator="MOAA/S 5 = responds readily to name, 0 = no response to trapezius squeeze",
)

RODRIGUES_2021 = Source(
    authors="Rodrigues NB, McIntyre RS, Lipsitz O, et al.",
    year=2021,
    journal="J Affect Disord 282:160-164",
    title="A simplified 6-item clinician administered dissociative symptom scale (CADSS-6) "
    "for monitoring dissociative effects of sub-anesthetic ketamine infusions",
    locator="items 1, 2, 6, 7, 15 and 22 of the CADSS, each 0-4",
)

GUY_1976 = Source(
    authors="Guy W",
    year=1976,
    journal="ECDEU Assessment Manual for Psychopharmacology, DHEW Publ No ADM 76-338:217-222",
    title="Clinical Global Impressions",
    locator="7-point global impression of change: 1 very much improved to 7 very much worse; "
    "'much' or 'very much improved' anchored the 30% NRS threshold in Farrar 2001",
)

CHAN_2022 = Source(
    authors="Chan EOT, Chan VWS, Tang TST, Cheung V, Wong MCS, Yee CH, Ng CF, Teoh JYC",
    year=2022,
    journal="Hong Kong Med J 28(6):466-474",
    title="Systematic review and meta-analysis of ketamine-associated uropathy",
    locator="45 studies, 4921 patients: frequency 77.1%, urgency 69.9%, suprapubic pain 60.4%",
)
