-- The provenance ledger's database (run once by the postgres image at its first start; README "Team setup").
-- The owner (POSTGRES_USER) creates the table and its append-only triggers once, from any machine with the
-- project installed:
--   python -c "from transfigure.provenance import Ledger; Ledger('postgresql://OWNER:PW@HOST:5432/provenance').count()"
-- then grant the stamping role what it needs:  GRANT SELECT, INSERT ON provenance TO stamper;
-- Services stamp as `stamper` (TRANSFIGURE_LEDGER=postgresql://stamper:...@.../provenance): it may only INSERT and
-- SELECT, so it can neither change rows nor drop the triggers. Change the password (compose: LEDGER_PASSWORD).
CREATE DATABASE provenance;
CREATE ROLE stamper LOGIN PASSWORD 'change-me';
