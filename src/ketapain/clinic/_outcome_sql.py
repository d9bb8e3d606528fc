"""The set-based query behind the analysis table: one row per course, computed in the
database (SQLite or PostgreSQL), so that a registry of a million sessions is read as a
hundred thousand rows instead of ten million.

Times are compared as seconds since 1970 (``epoch``), the one place where the two
dialects differ besides JSON access. Only current rows count: not corrected by a later
row and not retractions (:func:`ketapain.clinic.records.current`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["COURSE_QUERY_COLUMNS", "course_query", "medication_query"]


def _current(alias: str, table: str) -> str:
    return (
        f"NOT {alias}.entered_in_error AND NOT EXISTS "
        f"(SELECT 1 FROM {table} later WHERE later.corrects_id = {alias}.id)"
    )


class _Dialect:
    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"

    def epoch(self, expr: str) -> str:
        """Seconds since 1970 of a UTC time column."""
        if self.pg:
            return f"EXTRACT(EPOCH FROM {expr})"
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"

    def epoch_date(self, expr: str) -> str:
        """Seconds since 1970 of midnight (UTC) of a date column."""
        if self.pg:
            return f"(({expr} - DATE '1970-01-01') * 86400.0)"
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"

    def nearest_week(self, seconds: str) -> str:
        """The whole week nearest to ``seconds`` (>= 0)."""
        if self.pg:
            return f"CAST(FLOOR({seconds} / 604800.0 + 0.5) AS INTEGER)"
        return f"CAST({seconds} / 604800.0 + 0.5 AS INTEGER)"  # truncates: floor for x >= 0

    def json_float(self, col: str, *path: str) -> str:
        if self.pg:
            return f"CAST(({col} #>> '{{{','.join(path)}}}') AS DOUBLE PRECISION)"
        return f"json_extract({col}, '$.{'.'.join(path)}')"

    def json_length(self, col: str, key: str) -> str:
        if self.pg:
            return f"json_array_length({col} -> '{key}')"
        return f"json_array_length({col}, '$.{key}')"

    def scope(self) -> str:
        """The patient ids of the parameter ``scope``, a JSON list of 32 hex digits each
        (a parameter, not a temporary table: a read transaction writes nothing)."""
        if self.pg:
            return (
                "(SELECT CAST(value AS UUID) FROM json_array_elements_text(CAST(:scope AS JSON)))"
            )
        return "(SELECT value FROM json_each(:scope))"  # SQLite keeps a UUID as 32 hex digits

    def programmed_min(self, col: str) -> str:
        """Minutes of a pump program (a JSON list of steps with ``duration_min``)."""
        if self.pg:
            return (
                "(SELECT SUM(CAST(step ->> 'duration_min' AS DOUBLE PRECISION)) "
                f"FROM json_array_elements({col}) AS step)"
            )
        return f"(SELECT SUM(json_extract(value, '$.duration_min')) FROM json_each({col}))"


_WEEKS: Final = range(1, 13)

COURSE_QUERY_COLUMNS: Final = (
    "course_id",
    "patient_id",
    "protocol",
    "start_date",
    "status",
    "baseline_nrs",
    "sessions_planned",
    "predicted_nrs_end",
    "predicted_nrs_week_4",
    "predicted_nrs_week_12",
    "birth_date",
    "sex",
    "diagnosis",
    "sessions_given",
    "first_start_t",
    "series_end_t",
    "infusion_h",
    "dose_mg",
    "dosing_weight_kg",
    "early_stops",
    "open_sessions",
    "nrs_end",
    *(f"nrs_week_{w}" for w in _WEEKS),
    "last_follow_up_s",
    "relief_lost_s",
    "booster_t",
    "boosters",
    "side_effects",
    "significant_side_effects",
    "sessions_with_side_effects",
    "alarms",
    "stop_alarms",
    "lft_checked",
    "lft_elevated",
    "lft_over_3x_uln",
)


def course_query(dialect: str, *, scoped: bool = False) -> str:
    """The SQL of one row per course; parameters ``as_of_t`` (epoch s), ``early_h`` (h),
    ``lost_fraction`` and ``uln_multiple``. ``scoped`` reads only the courses of the
    patients in the parameter ``scope`` (a JSON list of ids as 32 hex digits)."""
    d = _Dialect(dialect)
    patients = d.scope()
    courses = f"(SELECT id FROM courses WHERE patient_id IN {patients})"

    def where(cond: str) -> str:
        return f"WHERE {cond}" if scoped else ""

    def and_(cond: str) -> str:
        return f"AND {cond}" if scoped else ""

    ev_t = d.epoch("e.time_utc")
    weeks = ",\n      ".join(
        f"AVG(CASE WHEN fu.week = {w} THEN fu.value END) AS nrs_week_{w}" for w in _WEEKS
    )
    return f"""
WITH
plan AS (
  SELECT cp.course_id, MIN(cp.start_date) OVER (PARTITION BY cp.course_id) AS start_date,
         {d.json_float("cp.plan", "baseline_nrs")} AS baseline_nrs,
         {d.json_length("cp.plan", "sessions")} AS sessions_planned,
         {d.json_float("cp.plan", "pain_forecast", "end_of_series", "nrs_expected")}
           AS predicted_nrs_end,
         {d.json_float("cp.plan", "pain_forecast", "week_4", "nrs_expected")}
           AS predicted_nrs_week_4,
         {d.json_float("cp.plan", "pain_forecast", "week_12", "nrs_expected")}
           AS predicted_nrs_week_12,
         ROW_NUMBER() OVER (PARTITION BY cp.course_id ORDER BY cp.version DESC) AS rn
  FROM course_plans cp {where("cp.course_id IN " + courses)}
),
status AS (
  SELECT course_id, status,
         ROW_NUMBER() OVER (PARTITION BY course_id ORDER BY sequence DESC) AS rn
  FROM course_status_events {where("course_id IN " + courses)}
),
demo AS (
  SELECT dm.patient_id, dm.birth_date, dm.sex,
         ROW_NUMBER() OVER (PARTITION BY dm.patient_id ORDER BY dm.recorded_utc DESC) AS rn
  FROM demographics dm WHERE {_current("dm", "demographics")} {and_("dm.patient_id IN " + patients)}
),
dx AS (
  SELECT dg.patient_id, dg.key,
         ROW_NUMBER() OVER (PARTITION BY dg.patient_id ORDER BY dg.recorded_utc) AS rn
  FROM diagnoses dg WHERE {_current("dg", "diagnoses")} {and_("dg.patient_id IN " + patients)}
),
ev AS (
  SELECT e.infusion_id, e.kind, e.rate_mg_per_h, {ev_t} AS t,
         LEAD({ev_t}) OVER (PARTITION BY e.infusion_id ORDER BY e.sequence) AS t_next,
         SUM(CASE WHEN e.kind IN ('start', 'resume') THEN 1
                  WHEN e.kind IN ('pause', 'stop') THEN -1 ELSE 0 END)
           OVER (PARTITION BY e.infusion_id ORDER BY e.sequence
                 ROWS UNBOUNDED PRECEDING) AS running,
         COUNT(e.rate_mg_per_h) OVER (PARTITION BY e.infusion_id ORDER BY e.sequence
                                      ROWS UNBOUNDED PRECEDING) AS rate_group
  FROM infusion_events e
  {where(f"e.infusion_id IN (SELECT id FROM infusions WHERE patient_id IN {patients})")}
),
seg AS (
  SELECT infusion_id, kind, t, running,
         COALESCE(t_next, CASE WHEN :as_of_t > t THEN :as_of_t ELSE t END) - t AS span_s,
         MAX(rate_mg_per_h) OVER (PARTITION BY infusion_id, rate_group) AS rate
  FROM ev
),
pump AS (
  SELECT infusion_id,
         MIN(CASE WHEN kind = 'start' THEN t END) AS start_t,
         MAX(CASE WHEN kind = 'stop' THEN t END) AS stop_t,
         SUM(CASE WHEN running > 0 THEN span_s ELSE 0 END) / 3600.0 AS running_h,
         SUM(CASE WHEN running > 0 THEN rate * span_s ELSE 0 END) / 3600.0 AS delivered_mg
  FROM seg GROUP BY infusion_id
),
bag AS (
  SELECT i.id, i.course_id, i.session_number, i.dosing_weight_kg, i.program,
         ROW_NUMBER() OVER (PARTITION BY i.course_id, i.session_number
                            ORDER BY i.recorded_utc DESC) AS rn
  FROM infusions i {where("i.patient_id IN " + patients)}
),
sess AS (
  SELECT bag.id AS infusion_id, bag.course_id, bag.session_number, bag.dosing_weight_kg,
         bag.program, pump.start_t, COALESCE(pump.stop_t, pump.start_t + pump.running_h * 3600.0)
           AS end_t, pump.stop_t, pump.running_h, pump.delivered_mg,
         ROW_NUMBER() OVER (PARTITION BY bag.course_id ORDER BY bag.session_number DESC) AS last_rn,
         ROW_NUMBER() OVER (PARTITION BY bag.course_id ORDER BY bag.session_number) AS first_rn
  FROM bag JOIN pump ON pump.infusion_id = bag.id
  WHERE bag.rn = 1 AND pump.start_t IS NOT NULL
),
given AS (
  SELECT course_id, COUNT(*) AS sessions_given, MIN(start_t) AS first_start_t,
         MAX(end_t) AS series_end_t, SUM(running_h) AS infusion_h,
         SUM(delivered_mg) AS dose_mg,
         MAX(CASE WHEN first_rn = 1 THEN dosing_weight_kg END) AS dosing_weight_kg,
         SUM(CASE WHEN stop_t IS NOT NULL
                   AND running_h <= {d.programmed_min("program")} / 60.0 - :early_h + 1e-6
                  THEN 1 ELSE 0 END) AS early_stops,
         SUM(CASE WHEN stop_t IS NULL THEN 1 ELSE 0 END) AS open_sessions
  FROM sess GROUP BY course_id
),
nrs_end AS (
  SELECT ls.course_id, s.value,
         ROW_NUMBER() OVER (PARTITION BY ls.course_id ORDER BY s.measured_utc DESC) AS rn
  FROM sess ls JOIN scores s ON s.infusion_id = ls.infusion_id
  WHERE ls.last_rn = 1 AND ls.stop_t IS NOT NULL
    AND s.instrument = 'pain_nrs' AND {_current("s", "scores")}
    AND {d.epoch("s.measured_utc")} >= ls.stop_t
),
fu_all AS (
  SELECT s.id AS score_id, c.id AS course_id, s.value,
         {d.epoch("s.measured_utc")} - g.series_end_t AS after_s,
         ROW_NUMBER() OVER (PARTITION BY s.id ORDER BY g.series_end_t DESC) AS rn
  FROM scores s
  JOIN courses c ON c.patient_id = s.patient_id
  JOIN given g ON g.course_id = c.id
  WHERE s.instrument = 'pain_nrs' AND s.infusion_id IS NULL AND {_current("s", "scores")}
    AND {d.epoch("s.measured_utc")} > g.series_end_t
    AND {d.epoch("s.measured_utc")} <= :as_of_t {and_("s.patient_id IN " + patients)}
),
fu AS (
  SELECT fu_all.course_id, fu_all.value, fu_all.after_s,
         {d.nearest_week("fu_all.after_s")} AS week
  FROM fu_all WHERE fu_all.rn = 1
),
follow AS (
  SELECT fu.course_id,
      {weeks},
      MAX(fu.after_s) AS last_follow_up_s,
      MIN(CASE WHEN fu.value > :lost_fraction * p.baseline_nrs + 1e-9 THEN fu.after_s END)
        AS relief_lost_s
  FROM fu JOIN plan p ON p.course_id = fu.course_id AND p.rn = 1
  GROUP BY fu.course_id
),
boost AS (
  SELECT b.course_id, MIN({d.epoch_date("b.scheduled_date")}) AS booster_t, COUNT(*) AS boosters
  FROM boosters b WHERE {_current("b", "boosters")} {and_("b.course_id IN " + courses)}
  GROUP BY b.course_id
),
se AS (
  SELECT i.course_id, COUNT(*) AS side_effects,
         SUM(CASE WHEN x.severity IN ('moderate', 'severe') THEN 1 ELSE 0 END)
           AS significant_side_effects,
         COUNT(DISTINCT i.session_number) AS sessions_with_side_effects
  FROM side_effects x JOIN infusions i ON i.id = x.infusion_id
  WHERE {_current("x", "side_effects")} {and_("i.patient_id IN " + patients)}
  GROUP BY i.course_id
),
al AS (
  SELECT i.course_id, COUNT(*) AS alarms,
         SUM(CASE WHEN a.level = 'stop' THEN 1 ELSE 0 END) AS stop_alarms
  FROM alarms a JOIN infusions i ON i.id = a.infusion_id {where("i.patient_id IN " + patients)}
  GROUP BY i.course_id
),
lft AS (
  SELECT g.course_id, COUNT(*) AS lft_checked,
         SUM(CASE WHEN l.value > l.ref_high THEN 1 ELSE 0 END) AS lft_elevated,
         SUM(CASE WHEN l.value > :uln_multiple * l.ref_high THEN 1 ELSE 0 END)
           AS lft_over_3x_uln
  FROM lab_results l
  JOIN courses c ON c.patient_id = l.patient_id
  JOIN given g ON g.course_id = c.id
  WHERE l.test IN ('alt', 'ast') AND l.value IS NOT NULL AND l.ref_high IS NOT NULL
    AND {_current("l", "lab_results")}
    AND {d.epoch("l.collected_utc")} >= g.first_start_t
    AND {d.epoch("l.collected_utc")} <= :as_of_t {and_("l.patient_id IN " + patients)}
  GROUP BY g.course_id
)
SELECT c.id AS course_id, c.patient_id, c.protocol, p.start_date, st.status,
       p.baseline_nrs, p.sessions_planned, p.predicted_nrs_end, p.predicted_nrs_week_4,
       p.predicted_nrs_week_12, demo.birth_date, demo.sex, dx.key AS diagnosis,
       g.sessions_given, g.first_start_t, g.series_end_t, g.infusion_h, g.dose_mg,
       g.dosing_weight_kg, g.early_stops, g.open_sessions, ne.value AS nrs_end,
       {", ".join(f"follow.nrs_week_{w}" for w in _WEEKS)},
       follow.last_follow_up_s, follow.relief_lost_s, boost.booster_t, boost.boosters,
       se.side_effects, se.significant_side_effects, se.sessions_with_side_effects,
       al.alarms, al.stop_alarms, lft.lft_checked, lft.lft_elevated, lft.lft_over_3x_uln
FROM courses c
JOIN plan p ON p.course_id = c.id AND p.rn = 1
LEFT JOIN status st ON st.course_id = c.id AND st.rn = 1
LEFT JOIN demo ON demo.patient_id = c.patient_id AND demo.rn = 1
LEFT JOIN dx ON dx.patient_id = c.patient_id AND dx.rn = 1
LEFT JOIN given g ON g.course_id = c.id
LEFT JOIN nrs_end ne ON ne.course_id = c.id AND ne.rn = 1
LEFT JOIN follow ON follow.course_id = c.id
LEFT JOIN boost ON boost.course_id = c.id
LEFT JOIN se ON se.course_id = c.id
LEFT JOIN al ON al.course_id = c.id
LEFT JOIN lft ON lft.course_id = c.id
{where("c.patient_id IN " + patients)}
"""


def medication_query(dialect: str, *, scoped: bool = False) -> str:
    """Every medication row: its id, the row it corrects, when it was recorded (of the
    patients in the parameter ``scope`` only, when ``scoped``)."""
    d = _Dialect(dialect)
    return f"""
SELECT m.id, m.corrects_id, m.patient_id, m.name, m.dose_mg_per_day, m.dose_mcg_per_h,
       m.active, m.entered_in_error, {d.epoch("m.recorded_utc")} AS recorded_t
FROM medications m {"WHERE m.patient_id IN " + d.scope() if scoped else ""}
"""
