DROP TABLE run_conditions;
DROP TABLE runs;
DROP TABLE projects;
