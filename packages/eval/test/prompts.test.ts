import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildTaskRequests, getTask, hellaswagPreprocess, loadSplit } from '@mamba-ts/eval';

// Expected strings are written by hand from the harness v0.4.2 templates (shared/reference/eval-harness.md §4–§6)
// and the rows in test/data. Few-shot draw indices come from CPython: with a pool of 6 documents,
// r = random.Random(1234); [r.sample(range(6), 2) for _ in range(3)] == [[3, 0], [0, 5], [4, 0]]
// (pool of 4: [[3, 0], [0, 3], [0, 2]]; pool of 5: [[3, 0], [0, 4], [4, 0]]; pool of 3: [[1, 0], [0, 2], [2, 0]];
// one draw per document from 6: [[3], [0], [0], [0], [4], [0]]).
const dataDir = fileURLToPath(new URL('./data', import.meta.url));
const requestsOf = (task: string, shots: number) => buildTaskRequests(getTask(task), dataDir, shots).map((d) => d.requests);

describe('lambada_openai', () => {
  const LIGHTHOUSE =
    'The lighthouse keeper climbed the stairs every night to light the lamp. When the storm came, the ships found their way home because of the';
  it('0-shot: split on the last literal space, target keeps its space', () => {
    const reqs = requestsOf('lambada_openai', 0);
    expect(reqs[0]).toEqual([{ context: LIGHTHOUSE, continuation: ' lamp' }]);
    // A double space inside the passage survives the literal split/join.
    expect(reqs[1]).toEqual([
      {
        context: 'Mara packed her bag with bread, cheese and a flask of tea.  She walked until noon and sat under an oak to eat her',
        continuation: ' bread',
      },
    ]);
  });

  it('2-shot: demos end with two spaces before the last word; the evaluated passage is dropped from its own draw', () => {
    const reqs = requestsOf('lambada_openai', 2);
    const snowman =
      'The children built a snowman in the yard and gave it a carrot for a nose. By evening the sun had melted the  snowman';
    // doc 0 drew [3, 0]: itself is dropped, leaving one demo.
    expect(reqs[0][0].context).toBe(`${snowman}\n\n${LIGHTHOUSE}`);
    // doc 1 drew [0, 5].
    const key = '"Where is the key?" asked Lena. Her brother pointed at the hook by the door, where the  key';
    expect(reqs[1][0].context).toBe(
      `${LIGHTHOUSE}  lamp\n\n${key}\n\nMara packed her bag with bread, cheese and a flask of tea.  She walked until noon and sat under an oak to eat her`,
    );
    // doc 2 drew [4, 0].
    expect(reqs[2][0].context).toBe(
      'Every morning the baker rose before dawn to knead the dough. The whole street smelled of fresh  bread\n\n' +
        `${LIGHTHOUSE}  lamp\n\n` +
        'Tom wrote a letter to his grandmother. He folded it twice and sealed the envelope before he posted the',
    );
    expect(reqs[2][0].continuation).toBe(' letter');
  });

  it('1-shot: a document that draws itself gets an empty demo block, i.e. a leading "\\n\\n"', () => {
    const reqs = requestsOf('lambada_openai', 1);
    expect(reqs[4][0].context).toBe(
      '\n\nEvery morning the baker rose before dawn to knead the dough. The whole street smelled of fresh',
    );
    expect(reqs[3][0].context.startsWith(`${LIGHTHOUSE}  lamp\n\n`)).toBe(true);
  });
});

describe('hellaswag', () => {
  it('preprocess: the documented worked example and the ending quirks', () => {
    expect(hellaswagPreprocess('Home and Garden: [header] How to grow tomatoes [title] Choose a sunny spot. Make sure the soil drains')).toBe(
      'Home and Garden: How to grow tomatoes. Choose a sunny spot. Make sure the soil drains',
    );
    expect(hellaswagPreprocess('[step] Dig a hole.  Then plant it.')).toBe(' Dig a hole. Then plant it.');
    expect(hellaswagPreprocess('by pouring   water on it [substeps] Watch it.')).toBe('by pouring  water on it Watch it.');
    // The bracket group does not cross a newline (Python's "." does cross "\r").
    expect(hellaswagPreprocess('a [x\ny] b [p\rq] c')).toBe('a [x\ny] b  c'.replace('  ', ' '));
  });

  it('0-shot: capitalize(ctx_b) lower-cases the rest; each ending becomes " " + processed ending', () => {
    const reqs = requestsOf('hellaswag', 0);
    const query = 'Home and Garden: How to grow tomatoes. Choose a sunny spot. Make sure the soil drains';
    expect(reqs[0]).toEqual([
      { context: query, continuation: '  Dig a hole. Then plant it.' },
      { context: query, continuation: ' well before you plant the seedlings.' },
      { context: query, continuation: ' by pouring  water on it Watch it.' },
      { context: query, continuation: ' and paint the fence blue.' },
    ]);
    expect(reqs[1][0]).toEqual({
      context: 'Washing dishes: A man stands at a kitchen sink full of plates. He',
      continuation: ' turns on the tap and scrubs a plate with a sponge.',
    });
    expect(reqs[2][0].context).toBe('Playing guitar: A woman sits on a stool holding a guitar. She tunes the strings and');
  });

  it('the training pool is processed too', () => {
    const train = loadSplit(dataDir, getTask('hellaswag'), 'train');
    expect(train[1].query).toBe('Personal Care and Style: How to brush your hair. Pick a brush. Start at the ends');
    expect((train[1].choices as string[])[1]).toBe('and work up to the roots Go slowly.');
    expect(train[1].gold).toBe(1);
  });

  it('2-shot: demos are query + " " + gold ending', () => {
    const reqs = requestsOf('hellaswag', 2);
    expect(reqs[0][0].context).toBe(
      'Painting: An artist dips a brush in red paint. She paints the canvas with long strokes.\n\n' +
        'Cooking eggs: A cook cracks two eggs into a bowl. She whisks them with a fork.\n\n' +
        'Home and Garden: How to grow tomatoes. Choose a sunny spot. Make sure the soil drains',
    );
    expect(reqs[1][0].context).toBe(
      'Cooking eggs: A cook cracks two eggs into a bowl. She whisks them with a fork.\n\n' +
        'Reading: A girl opens a book on the sofa. She reads the first chapter.\n\n' +
        'Washing dishes: A man stands at a kitchen sink full of plates. He',
    );
  });
});

describe('piqa', () => {
  it('0-shot and 2-shot', () => {
    const zero = requestsOf('piqa', 0);
    expect(zero[0]).toEqual([
      { context: 'Question: How do I keep bread fresh for longer?\nAnswer:', continuation: ' Store it in a sealed bag in a cool place.' },
      { context: 'Question: How do I keep bread fresh for longer?\nAnswer:', continuation: ' Leave it open on a sunny windowsill.' },
    ]);
    const two = requestsOf('piqa', 2);
    expect(two[0][1]).toEqual({
      context:
        'Question: Stop a door from squeaking\nAnswer: Oil the hinges.\n\n' +
        'Question: Keep a candle from dripping\nAnswer: Chill it in the fridge before lighting.\n\n' +
        'Question: How do I keep bread fresh for longer?\nAnswer:',
      continuation: ' Leave it open on a sunny windowsill.',
    });
  });
});

describe('arc', () => {
  it('arc_easy: "Question: ... Answer:", 3–5 choices, numeric labels', () => {
    const zero = requestsOf('arc_easy', 0);
    expect(zero[0].map((r) => r.continuation)).toEqual([' the Sun', ' a rock', ' a pillow', ' a spoon']);
    expect(zero[0][0].context).toBe('Question: Which of these is a source of light?\nAnswer:');
    expect(zero[1]).toHaveLength(3);
    expect(zero[2]).toHaveLength(5);
    const two = requestsOf('arc_easy', 2);
    expect(two[0][0].context).toBe(
      'Question: Which is a liquid at room temperature?\nAnswer: water\n\n' +
        'Question: What is frozen water called?\nAnswer: ice\n\n' +
        'Question: Which of these is a source of light?\nAnswer:',
    );
  });

  it('arc_challenge 2-shot, second document (draws [0, 3])', () => {
    const two = requestsOf('arc_challenge', 2);
    expect(two[1][0].context).toBe(
      'Question: Which layer of Earth is the thinnest?\nAnswer: crust\n\n' +
        "Question: What is the main gas in Earth's air?\nAnswer: nitrogen\n\n" +
        'Question: Which change is chemical?\nAnswer:',
    );
  });
});

describe('winogrande', () => {
  it('partial scoring: two contexts, one shared continuation; "_\'s" keeps the inserted space', () => {
    const zero = requestsOf('winogrande', 0);
    expect(zero[0]).toEqual([
      { context: 'Nora was a far faster typist than Olga, so Nora', continuation: ' finished the report first.' },
      { context: 'Nora was a far faster typist than Olga, so Olga', continuation: ' finished the report first.' },
    ]);
    expect(zero[1]).toEqual([
      { context: 'The piano could not go through the doorway because the piano', continuation: " 's too wide." },
      { context: 'The piano could not go through the doorway because the doorway', continuation: " 's too wide." },
    ]);
  });

  it('2-shot: demo = sentence with the correct option + " " + stripped rest', () => {
    const two = requestsOf('winogrande', 2);
    const prefix =
      'Mark could not lift the box onto the truck because the box was too heavy.\n\n' +
      'The cup fell off the shelf because the cup was too close to the edge.\n\n';
    expect(two[0][1]).toEqual({ context: `${prefix}Nora was a far faster typist than Olga, so Olga`, continuation: ' finished the report first.' });
    // doc 2 drew [4, 0]; train row 4 has answer "2".
    expect(two[2][0].context.startsWith('The soup was colder than the tea, so Lisa drank the tea first.\n\n')).toBe(true);
  });
});

describe('openbookqa', () => {
  it('raw question stem; answerKey with leading whitespace', () => {
    const zero = requestsOf('openbookqa', 0);
    expect(zero[0][1]).toEqual({ context: 'A magnet will stick to', continuation: ' an iron nail' });
    const two = requestsOf('openbookqa', 2);
    expect(two[0][0].context).toBe(
      'The moon shines because it reflects sunlight\n\nWater boils at a high temperature\n\nA magnet will stick to',
    );
  });
});

describe('mmlu', () => {
  const zeroShot =
    'The following are multiple choice questions (with answers) about anatomy.\n' +
    'Which bone protects the brain?\nA. Femur\nB. Skull\nC. Rib\nD. Tibia\nAnswer:';
  it('0-shot: description with one newline, stripped question, letters as continuations', () => {
    const zero = requestsOf('mmlu_anatomy', 0);
    expect(zero[0]).toEqual([' A', ' B', ' C', ' D'].map((continuation) => ({ context: zeroShot, continuation })));
    expect(requestsOf('mmlu_formal_logic', 0)[0][0].context.startsWith(
      'The following are multiple choice questions (with answers) about formal logic.\nIf P implies Q',
    )).toBe(true);
  });

  it('2-shot: the first dev items, no randomness', () => {
    const two = requestsOf('mmlu_anatomy', 2);
    const expected =
      'The following are multiple choice questions (with answers) about anatomy.\n' +
      'Which organ pumps blood?\nA. Heart\nB. Liver\nC. Lung\nD. Kidney\nAnswer: A\n\n' +
      'Where is the patella?\nA. Elbow\nB. Knee\nC. Wrist\nD. Neck\nAnswer: B\n\n' +
      'Which bone protects the brain?\nA. Femur\nB. Skull\nC. Rib\nD. Tibia\nAnswer:';
    expect(two[0][0].context).toBe(expected);
    expect(two[1][0].context.startsWith(expected.slice(0, expected.indexOf('Which bone')))).toBe(true);
  });
});
