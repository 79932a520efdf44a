-- Migration 0002 (issue 4: anti-fraud). Hand-written while issues 4 and 5 are developed side by side; see README "Migrations".
SELECT 1;
