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
    "CHONG_2009",
    "CLEMENTS_1981",
    "CLEMENTS_1982",
    "DAYTON_1983",
    "DOMINO_1984",
    "FANTA_2015",
    "FLINT_2017",
    "HERD_2007",
    "HIJAZI_2003",
    "KAMP_2020",
    "KETALAR_LABEL",
    "KOPPEL_1990",
    "OLOFSEN_2022",
    "PEREZ_RUIXO_2021",
    "SIGTERMANS_2009",
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
        year = "n.d." if self.year is None else str(self.year)
        return f"{self.authors}, {year}. {self.journal}"

    def short(self) -> str:
        """Return ``FirstAuthor year``, e.g. ``'Domino 1984'``."""
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
