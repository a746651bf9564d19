-- The same tables on SQLite, as <t>_rows: the kernel's runner generates the scoped views,
-- their triggers, the guards and (from the module's declared cascades) the cascades.
CREATE TABLE courses_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    title TEXT NOT NULL,
    summary TEXT,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE lessons_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    course_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT,
    position INTEGER,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, course_id) REFERENCES courses_rows (org_id, id)
);
CREATE INDEX lessons_course_idx ON lessons_rows (org_id, course_id);

CREATE TABLE enrollments_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    course_id TEXT NOT NULL,
    learner TEXT NOT NULL,
    completed INTEGER,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, course_id) REFERENCES courses_rows (org_id, id)
);
CREATE INDEX enrollments_course_idx ON enrollments_rows (org_id, course_id);

CREATE TABLE assets_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    lesson_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lesson_id) REFERENCES lessons_rows (org_id, id)
);
CREATE INDEX assets_lesson_idx ON assets_rows (org_id, lesson_id);
