-- Courses, lessons, enrollments and assets: each row belongs to exactly one organization.
-- The kernel's runner adds forced row-level security, the policy and the grants.
CREATE TABLE courses (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    title text NOT NULL,
    summary text,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE lessons (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    course_id uuid NOT NULL,
    title text NOT NULL,
    body text,
    position bigint,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, course_id) REFERENCES courses (org_id, id) ON DELETE CASCADE
);
CREATE INDEX lessons_course_idx ON lessons (org_id, course_id);

CREATE TABLE enrollments (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    course_id uuid NOT NULL,
    learner text NOT NULL,
    completed boolean,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, course_id) REFERENCES courses (org_id, id) ON DELETE CASCADE
);
CREATE INDEX enrollments_course_idx ON enrollments (org_id, course_id);

CREATE TABLE assets (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    lesson_id uuid NOT NULL,
    name text NOT NULL,
    url text NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, lesson_id) REFERENCES lessons (org_id, id) ON DELETE CASCADE
);
CREATE INDEX assets_lesson_idx ON assets (org_id, lesson_id);
