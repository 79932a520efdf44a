-- Migration 0003 (issue 5: members). Hand-written while issues 4 and 5 are developed side by side; see README "Migrations".
SELECT 1;
